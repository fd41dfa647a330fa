// Host quantizers for the low-bit formats: error bounds of round-to-nearest,
// GPTQ beating RTN on the layer-output error it minimises, format specs and
// `--layer` rule parsing.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>

#include "runtime/half.h"
#include "runtime/lowbit.h"
#include "tools/gptq.h"
#include "tools/lowbit_quant.h"
#include "tools/pack_plan.h"

namespace {

using stk::WeightFormat;
using stk::host::FormatSpec;
using stk::host::parse_format_spec;

std::vector<float> gaussian(size_t n, uint32_t seed, float sd = 0.1f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// RTN with min/max groups: every weight is within half a step of its value
// (plus the fp16 rounding of the group's offset and step).
TEST(LowbitQuant, RoundToNearestErrorBound) {
  for (const char* name : {"q4", "q3", "q2", "q4g64", "q3g128", "q2g256"}) {
    const FormatSpec spec = parse_format_spec(name);
    const uint32_t rows = 9, cols = 172;
    std::vector<float> w = gaussian(size_t(rows) * cols, 7);
    auto q = stk::host::lowbit_quantize_rtn(w.data(), rows, cols, spec);
    const float maxq = float(stk::host::lowbit_max_code(spec.format));
    double sq = 0;
    for (uint32_t r = 0; r < rows; ++r) {
      for (uint32_t g = 0; g * spec.group < cols; ++g) {
        float lo = 1e9f, hi = -1e9f;
        const uint32_t c1 = std::min(cols, (g + 1) * spec.group);
        for (uint32_t c = g * spec.group; c < c1; ++c) lo = std::min(lo, w[r * cols + c]), hi = std::max(hi, w[r * cols + c]);
        const float step = (hi - lo) / maxq;
        for (uint32_t c = g * spec.group; c < c1; ++c) {
          const float e = std::fabs(w[r * cols + c] - q.value(r, c));
          ASSERT_LE(e, 0.5f * step * 1.01f + 2e-3f * std::max(std::fabs(lo), std::fabs(hi))) << name;
          sq += double(e) * e;
        }
      }
    }
    // And the average error is what uniform rounding gives: about step/sqrt(12).
    EXPECT_GT(sq, 0.0);
  }
}

TEST(LowbitQuant, TernaryCodesAndError) {
  const uint32_t rows = 8, cols = 256;
  std::vector<float> w = gaussian(size_t(rows) * cols, 3);
  for (bool search : {false, true}) {
    auto q = stk::host::lowbit_quantize_rtn(w.data(), rows, cols, parse_format_spec("t2g64"), nullptr, search);
    double err = 0, ref = 0;
    for (uint32_t r = 0; r < rows; ++r)
      for (uint32_t c = 0; c < cols; ++c) {
        ASSERT_LE(q.codes[r * cols + c], 2);
        const double e = w[r * cols + c] - q.value(r, c);
        err += e * e;
        ref += double(w[r * cols + c]) * w[r * cols + c];
      }
    // Optimal 3-level quantization of a Gaussian leaves ~19% of the energy;
    // absmean scaling a bit more.
    EXPECT_LT(err / ref, search ? 0.22 : 0.30);
  }
}

TEST(LowbitQuant, ClipSearchNeverWorseThanMinMax) {
  std::vector<float> w = gaussian(32 * 64, 11);
  w[5] = 1.5f;  // an outlier the search may clip
  for (const char* name : {"q4", "q3", "q2", "t2"}) {
    const FormatSpec spec = parse_format_spec(name);
    auto a = stk::host::lowbit_quantize_rtn(w.data(), 32, 64, spec, nullptr, false);
    auto b = stk::host::lowbit_quantize_rtn(w.data(), 32, 64, spec, nullptr, true);
    double ea = 0, eb = 0;
    for (uint32_t r = 0; r < 32; ++r)
      for (uint32_t c = 0; c < 64; ++c) {
        ea += std::pow(w[r * 64 + c] - a.value(r, c), 2);
        eb += std::pow(w[r * 64 + c] - b.value(r, c), 2);
      }
    EXPECT_LE(eb, ea * 1.0001) << name;
  }
}

// GPTQ minimises sum_r e_r^T H e_r; on correlated inputs it must beat RTN
// with the same group grids by a clear margin.
TEST(LowbitQuant, GptqBeatsRtnOnOutputError) {
  const uint32_t rows = 24, cols = 96, samples = 400;
  std::vector<float> w = gaussian(size_t(rows) * cols, 5);
  std::vector<float> base = gaussian(size_t(samples) * 8, 6, 1.0f), mix = gaussian(8 * cols, 8, 1.0f),
                     noise = gaussian(size_t(samples) * cols, 9, 0.1f);
  std::vector<double> H(size_t(cols) * cols, 0.0);
  for (uint32_t s = 0; s < samples; ++s) {
    std::vector<double> x(cols);
    for (uint32_t c = 0; c < cols; ++c) {
      double v = noise[s * cols + c];
      for (uint32_t k = 0; k < 8; ++k) v += base[s * 8 + k] * mix[k * cols + c];
      x[c] = v;
    }
    for (uint32_t i = 0; i < cols; ++i)
      for (uint32_t j = 0; j < cols; ++j) H[i * cols + j] += x[i] * x[j];
  }
  for (const char* name : {"q4", "q3", "q2", "t2"}) {
    const FormatSpec spec = parse_format_spec(name);
    auto rtn = stk::host::lowbit_quantize_rtn(w.data(), rows, cols, spec);
    auto gq = stk::host::gptq_quantize(w.data(), rows, cols, spec, H);
    std::vector<float> a(w.size()), b(w.size());
    for (uint32_t r = 0; r < rows; ++r)
      for (uint32_t c = 0; c < cols; ++c) a[r * cols + c] = rtn.value(r, c), b[r * cols + c] = gq.value(r, c);
    const double ea = stk::host::layer_output_error(w.data(), a.data(), rows, cols, H);
    const double eb = stk::host::layer_output_error(w.data(), b.data(), rows, cols, H);
    EXPECT_LT(eb, 0.7 * ea) << name;
  }
}

TEST(LowbitQuant, FormatSpecsAndBitsPerWeight) {
  EXPECT_EQ(parse_format_spec("q4").group, 32u);
  EXPECT_EQ(parse_format_spec("q3g64").group, 64u);
  EXPECT_EQ(parse_format_spec("t2g256").format, WeightFormat::T2);
  EXPECT_THROW(parse_format_spec("q4g48"), std::invalid_argument);
  EXPECT_THROW(parse_format_spec("q8g64"), std::invalid_argument);
  EXPECT_THROW(parse_format_spec("q5"), std::invalid_argument);
  EXPECT_THROW(parse_format_spec("q4gx"), std::invalid_argument);
  // 64 x 256, group 32: exactly 4 bits + 32 bits of scales per 32 weights.
  EXPECT_DOUBLE_EQ(parse_format_spec("q4").bpw(64, 256), 5.0);
  EXPECT_DOUBLE_EQ(parse_format_spec("q3").bpw(64, 256), 4.0);
  EXPECT_DOUBLE_EQ(parse_format_spec("q2").bpw(64, 256), 3.0);
  EXPECT_DOUBLE_EQ(parse_format_spec("q2g64").bpw(64, 256), 2.5);
  EXPECT_DOUBLE_EQ(parse_format_spec("t2g64").bpw(64, 256), 2.25);
  EXPECT_DOUBLE_EQ(parse_format_spec("t2g256").bpw(64, 256), 2.0625);
}

stk::host::HostModel tiny_model() {
  stk::host::HostModel m;
  m.config = {64, 172, 2, 8, 4, 512, 512, true};
  auto add = [&](stk::TensorRole role, uint32_t layer, uint32_t rows, uint32_t cols) {
    stk::host::HostTensor t;
    t.name = stk::host::tensor_name(role, layer);
    t.role = role, t.layer = layer, t.rows = rows, t.cols = cols;
    t.data.assign(size_t(rows) * cols, 0.01f);
    m.tensors.push_back(t);
  };
  add(stk::TensorRole::TokenEmbedding, stk::kNoLayer, 512, 64);
  for (uint32_t l = 0; l < 2; ++l) {
    add(stk::TensorRole::AttnNorm, l, 1, 64);
    add(stk::TensorRole::Wq, l, 64, 64);
    add(stk::TensorRole::W2, l, 64, 172);
  }
  return m;
}

TEST(LayerRules, ParseAndApply) {
  auto r = stk::host::parse_layer_rule("layers.*.ffn.w2=q8");
  EXPECT_EQ(r.pattern, "layers.*.ffn.w2");
  EXPECT_EQ(r.spec.format, WeightFormat::Q8);
  EXPECT_THROW(stk::host::parse_layer_rule("layers.*.ffn.w2"), std::invalid_argument);
  EXPECT_THROW(stk::host::parse_layer_rule("=q4"), std::invalid_argument);
  EXPECT_THROW(stk::host::parse_layer_rule("layers.0.*="), std::invalid_argument);
  EXPECT_THROW(stk::host::parse_layer_rule("layers.0.*=q7"), std::invalid_argument);

  stk::host::HostModel m = tiny_model();
  stk::host::PackPlanOptions o;
  o.base = parse_format_spec("q4");
  o.rules = {stk::host::parse_layer_rule("layers.*.ffn.w2=q8"), stk::host::parse_layer_rule("layers.1.*=q2g64"),
             stk::host::parse_layer_rule("tok_embeddings=q8")};
  auto f = stk::host::apply_rules(m, o);
  // tok, [norm, wq, w2] x 2
  EXPECT_EQ(f[0].format, WeightFormat::Q8);
  EXPECT_EQ(f[1].format, WeightFormat::F32);  // norms are never quantized
  EXPECT_EQ(f[2].format, WeightFormat::Q4);
  EXPECT_EQ(f[3].format, WeightFormat::Q8);
  EXPECT_EQ(f[4].format, WeightFormat::F32);
  EXPECT_EQ(f[5].name(), "q2g64");  // later rule wins
  EXPECT_EQ(f[6].name(), "q2g64");

  o.rules = {stk::host::parse_layer_rule("layers.9.*=q8")};
  try {
    stk::host::apply_rules(m, o);
    FAIL() << "a pattern matching nothing must be an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("matches no matrix"), std::string::npos) << e.what();
  }
}

TEST(LayerRules, DefaultBpwCandidatesAreTheNeighbouringWidths) {
  auto names = [](double bpw) {
    std::string s;
    for (const auto& f : stk::host::default_bpw_candidates(bpw)) s += (s.empty() ? "" : ",") + f.name();
    return s;
  };
  EXPECT_EQ(names(4.0), "q4k,q4kg32,q3k,q3kg32");  // 5.0, 4.5, 4.0, 3.5 bits
  EXPECT_EQ(names(3.0), "q3k,q3kg32,q2k,q2kg32,t2k");  // 4.0 .. 2.5
  EXPECT_EQ(names(5.0), "q4k,q4kg32");
  EXPECT_EQ(names(6.0), "q8,q4k");    // nothing within the window: the nearest format on each side
  EXPECT_EQ(names(8.0), "q8,q4k");    // q8 alone is above the target
  EXPECT_EQ(names(9.0), "q8");
  EXPECT_EQ(names(1.2), "t2k");       // below the whole family: its cheapest member
}

TEST(LayerRules, BpwBudgetIsMet) {
  stk::host::HostModel m = tiny_model();
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 0.1f);
  for (auto& t : m.tensors) for (float& v : t.data) v = nd(rng);
  for (double budget : {6.0, 4.5, 3.2}) {
    stk::host::PackPlanOptions o;
    o.base = parse_format_spec("q8");
    o.bpw = budget;
    stk::host::PackedModel pm = stk::host::pack_with_plan(m, {}, o);
    EXPECT_LE(stk::host::linear_bpw(pm), budget);
    EXPECT_GT(stk::host::linear_bpw(pm), budget - 1.0);  // and uses most of it
  }
  stk::host::PackPlanOptions o;
  o.base = parse_format_spec("q8");
  o.bpw = 1.0;
  EXPECT_THROW(stk::host::pack_with_plan(m, {}, o), std::invalid_argument);
}

}  // namespace
