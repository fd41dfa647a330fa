// Low-bit formats (Q4/Q3/Q2/T2): layout round trip and every kernel against
// independently computed products, on ragged shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "runtime/kernels/kernels.h"
#include "runtime/lowbit.h"
#include "runtime/weights.h"
#include "tests/kernel_sets.h"
#include "tools/lowbit_quant.h"

namespace {

using stk::WeightFormat;
using stk::host::FormatSpec;
using stk::host::LowbitTensor;

struct Packed {
  LowbitTensor q;
  std::vector<uint8_t> bytes;  // 64-byte aligned copy lives in `store`
  std::vector<uint64_t> store;
  stk::WeightView view;
};

Packed make(WeightFormat f, uint32_t group, uint32_t rows, uint32_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> w(size_t(rows) * cols);
  for (float& v : w) v = nd(rng) + 0.01f;  // a small offset, so the min term matters
  Packed p;
  FormatSpec spec;
  spec.format = f;
  spec.group = group;
  p.q = stk::host::lowbit_quantize_rtn(w.data(), rows, cols, spec);
  uint32_t params[4];
  p.bytes = stk::host::lowbit_pack(p.q, params);
  uint64_t need = 0;
  EXPECT_TRUE(stk::weight_format_bytes(f, rows, cols, params, &need));
  EXPECT_EQ(need, p.bytes.size());
  p.store.assign((p.bytes.size() + 7) / 8 + 8, 0);
  uint8_t* base = reinterpret_cast<uint8_t*>(p.store.data());
  base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64;
  std::memcpy(base, p.bytes.data(), p.bytes.size());
  p.view = stk::WeightView{f, rows, cols, base, p.bytes.size(), {params[0], params[1], params[2], params[3]}};
  return p;
}

// The int8 copy of activations the runtime makes (groups of 32, amax/127),
// written here from the contract in runtime/kernels/matmul.h.
struct Acts {
  std::vector<float> x, xq, scales;
  std::vector<int8_t> q;
  size_t ld, ldq;
  uint32_t n, cols;
  stk::Activations view() const { return stk::Activations{x.data(), ld, n, q.data(), scales.data(), ldq}; }
};

Acts make_acts(uint32_t n, uint32_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  Acts a;
  a.n = n, a.cols = cols, a.ld = cols + 3, a.ldq = (cols + 63) / 64 * 64;
  const uint32_t groups = (cols + 31) / 32;
  a.x.assign(a.ld * n, 0.f);
  a.xq.assign(a.ld * n, 0.f);
  a.q.assign(a.ldq * n, 0);
  a.scales.assign(size_t(groups) * n, 0.f);
  for (uint32_t t = 0; t < n; ++t) {
    for (uint32_t c = 0; c < cols; ++c) a.x[t * a.ld + c] = nd(rng) * (c % 7 == 0 ? 4.f : 1.f);
    for (uint32_t g = 0; g < groups; ++g) {
      float amax = 0;
      for (uint32_t c = g * 32; c < std::min(cols, g * 32 + 32); ++c) amax = std::max(amax, std::fabs(a.x[t * a.ld + c]));
      const float s = amax / 127.f;
      a.scales[t * groups + g] = s;
      for (uint32_t c = g * 32; c < std::min(cols, g * 32 + 32); ++c) {
        const int v = int(std::lrint(s > 0 ? a.x[t * a.ld + c] / s : 0.f));
        a.q[t * a.ldq + c] = int8_t(v);
        a.xq[t * a.ld + c] = float(v) * s;
      }
    }
  }
  return a;
}

struct Shape {
  uint32_t rows, cols, n;
};
const Shape kShapes[] = {{1, 1, 1}, {1, 300, 1}, {37, 1, 2}, {5, 64, 1}, {7, 172, 3}, {13, 33, 2},
                         {3, 257, 1}, {64, 172, 4}, {172, 64, 1}, {2, 31, 5}, {3, 600, 2}, {4, 1000, 1}};
const WeightFormat kFormats[] = {WeightFormat::Q4, WeightFormat::Q3, WeightFormat::Q2, WeightFormat::T2};

TEST(Lowbit, DequantizeRowMatchesHostDecode) {
  for (WeightFormat f : kFormats) {
    for (uint32_t g : {32u, 64u, 256u}) {
      for (const Shape& s : kShapes) {
        Packed p = make(f, g, s.rows, s.cols, s.rows * 31 + s.cols);
        std::vector<float> row(s.cols);
        for (uint32_t r = 0; r < s.rows; ++r) {
          stk::weight_dequantize_row(p.view, r, row.data());
          for (uint32_t c = 0; c < s.cols; ++c) ASSERT_EQ(row[c], p.q.value(r, c)) << int(f) << " " << r << "," << c;
        }
      }
    }
  }
}

TEST(Lowbit, ByteSizeValidation) {
  uint64_t out = 0;
  const uint32_t bad_group[4] = {48, 0, 0, 0}, bad_param[4] = {32, 1, 0, 0}, ok[4] = {32, 0, 0, 0};
  EXPECT_FALSE(stk::weight_format_bytes(WeightFormat::Q4, 4, 64, bad_group, &out));
  EXPECT_FALSE(stk::weight_format_bytes(WeightFormat::Q4, 4, 64, bad_param, &out));
  // The largest shape still has an exact size (no wrap-around).
  ASSERT_TRUE(stk::weight_format_bytes(WeightFormat::Q4, 0xFFFFFFFFu, 0xFFFFFFFFu, ok, &out));
  EXPECT_EQ(out, 0xFFFFFFFFull * (1ull << 31) + 0xFFFFFFFFull * (1ull << 27) * 4);
  // 7 x 172, group 32: 6 blocks of 16 bytes per row, 6 groups of (d, m) fp16.
  ASSERT_TRUE(stk::weight_format_bytes(WeightFormat::Q4, 7, 172, ok, &out));
  EXPECT_EQ(out, 7u * 96u + 64u /* 672 -> 704 aligned */ - 32u + 7u * 24u);
  ASSERT_TRUE(stk::weight_format_bytes(WeightFormat::T2, 1, 64, ok, &out));
  EXPECT_EQ(out, 64u + 4u);  // 2 blocks x 8 bytes, aligned to 64, then 2 fp16 scales
}

// Every kernel of every ISA this CPU runs vs. sums computed here in double
// from the host-side decode of the codes and the int8 activations.
TEST(Lowbit, KernelsMatchIndependentReference) {
  const std::vector<const stk::KernelSet*> sets = stk::test::runnable_kernel_sets();
  for (WeightFormat f : kFormats) {
    for (uint32_t g : {32u, 64u, 128u, 256u}) {
      for (const Shape& s : kShapes) {
        Packed p = make(f, g, s.rows, s.cols, s.rows * 7 + s.cols + g);
        Acts a = make_acts(s.n, s.cols, s.cols + 5);
        const size_t ldy = s.rows + 2;
        std::vector<double> want(ldy * s.n), mag(ldy * s.n);
        for (uint32_t t = 0; t < s.n; ++t)
          for (uint32_t r = 0; r < s.rows; ++r) {
            double acc = 0, m = 0;
            for (uint32_t c = 0; c < s.cols; ++c) {
              acc += double(p.q.value(r, c)) * a.xq[t * a.ld + c];
              m += std::fabs(double(p.q.value(r, c)) * a.xq[t * a.ld + c]);
            }
            want[t * ldy + r] = acc;
            mag[t * ldy + r] = m;
          }
        for (const stk::KernelSet* k : sets) {
          ASSERT_TRUE(k->wants_q8_activations[uint32_t(f)]);
          stk::MatmulFn fn = k->get(f);
          ASSERT_NE(fn, nullptr);
          std::vector<float> y(ldy * s.n, -1.f), y2(ldy * s.n, -1.f);
          fn(p.view, a.view(), y.data(), ldy, 0, s.rows);
          // Split rows at an odd point: results must be bit-identical.
          const uint32_t mid = s.rows / 3;
          fn(p.view, a.view(), y2.data(), ldy, 0, mid);
          fn(p.view, a.view(), y2.data(), ldy, mid, s.rows);
          for (uint32_t t = 0; t < s.n; ++t)
            for (uint32_t r = 0; r < s.rows; ++r) {
              ASSERT_NEAR(y[t * ldy + r], want[t * ldy + r], 1e-5 * mag[t * ldy + r] + 1e-6)
                  << k->name << " " << stk::weight_format_name(f) << " g" << g << " " << s.rows << "x" << s.cols
                  << " r" << r << " t" << t;
              ASSERT_EQ(y[t * ldy + r], y2[t * ldy + r]);
            }
          EXPECT_EQ(y[s.rows], -1.f);  // nothing written outside [r0, r1)
        }
        // The float-activation reference uses x itself.
        std::vector<float> y(ldy * s.n);
        stk::matmul_lowbit_f32act_scalar(p.view, a.view(), y.data(), ldy, 0, s.rows);
        for (uint32_t t = 0; t < s.n; ++t)
          for (uint32_t r = 0; r < s.rows; ++r) {
            double acc = 0, m = 0;
            for (uint32_t c = 0; c < s.cols; ++c) {
              acc += double(p.q.value(r, c)) * a.x[t * a.ld + c];
              m += std::fabs(double(p.q.value(r, c)) * a.x[t * a.ld + c]);
            }
            ASSERT_NEAR(y[t * ldy + r], acc, 1e-5 * m + 1e-6);
          }
      }
    }
  }
}

#if defined(__ARM_NEON)
// The NEON kernels where the test above does not reach: group sizes that are
// multiples of 32 but not powers of two (lowbit_group_ok accepts them), rows
// wider than the 512 groups of activation sums the kernels keep at once (so
// they run in stripes), and one token at a time giving the bits of a batch.
TEST(Lowbit, NeonKernelsOnOddGroupsAndWideRows) {
  const stk::KernelSet* k = stk::kernels_for(stk::Isa::Neon);
  ASSERT_NE(k, nullptr);
  struct Case {
    uint32_t group;
    Shape s;
  };
  const Case cases[] = {{96, {7, 172, 3}},  {160, {5, 1000, 5}},   {224, {3, 600, 1}},
                        {96, {2, 33, 6}},   {32, {3, 16416, 5}},   {64, {2, 32800, 1}}};
  for (WeightFormat f : kFormats) {
    for (const Case& cs : cases) {
      const Shape& s = cs.s;
      SCOPED_TRACE(std::string(stk::weight_format_name(f)) + " g" + std::to_string(cs.group) + " " +
                   std::to_string(s.rows) + "x" + std::to_string(s.cols) + " n" + std::to_string(s.n));
      Packed p = make(f, cs.group, s.rows, s.cols, s.rows + s.cols + cs.group);
      Acts a = make_acts(s.n, s.cols, s.cols + 1);
      const size_t ldy = s.rows + 2;
      const uint32_t groups = (s.cols + 31) / 32;
      stk::MatmulFn fn = k->get(f);
      ASSERT_TRUE(k->wants_q8_activations[uint32_t(f)]);
      std::vector<float> y(ldy * s.n, -1.f), y2(ldy * s.n, -1.f);
      fn(p.view, a.view(), y.data(), ldy, 0, s.rows);
      const uint32_t mid = (s.rows + 1) / 2;
      fn(p.view, a.view(), y2.data(), ldy, mid, s.rows);
      fn(p.view, a.view(), y2.data(), ldy, 0, mid);
      for (uint32_t t = 0; t < s.n; ++t) {
        std::vector<float> y1(ldy, -1.f);
        const stk::Activations one{a.x.data() + t * a.ld, a.ld, 1, a.q.data() + t * a.ldq,
                                   a.scales.data() + size_t(t) * groups, a.ldq};
        fn(p.view, one, y1.data(), ldy, 0, s.rows);
        for (uint32_t r = 0; r < s.rows; ++r) {
          double acc = 0, m = 0;
          for (uint32_t c = 0; c < s.cols; ++c) {
            acc += double(p.q.value(r, c)) * a.xq[t * a.ld + c];
            m += std::fabs(double(p.q.value(r, c)) * a.xq[t * a.ld + c]);
          }
          ASSERT_NEAR(y[t * ldy + r], acc, 1e-5 * m + 1e-6) << "r" << r << " t" << t;
          ASSERT_EQ(y[t * ldy + r], y2[t * ldy + r]) << "row split, r" << r << " t" << t;
          ASSERT_EQ(y[t * ldy + r], y1[r]) << "token alone, r" << r << " t" << t;
        }
        ASSERT_EQ(y1[s.rows], -1.f);  // nothing written outside [r0, r1)
      }
    }
  }
}
#endif

#if defined(__x86_64__)
// The x86 kernels (AVX2, AVX-512 VNNI) where the test above does not reach:
// group sizes that are multiples of 32 but not powers of two, rows wider than
// the 8192-column stripes of the AVX-512 kernels, a row count that is not a
// multiple of anything, and each token of a batch alone giving the bits of
// the batch.
TEST(Lowbit, X86KernelsOnOddGroupsAndWideRows) {
  struct Case {
    uint32_t group;
    Shape s;
  };
  const Case cases[] = {{96, {7, 172, 3}},  {160, {5, 1000, 5}}, {224, {3, 600, 1}},  {96, {2, 33, 6}},
                        {192, {3, 520, 2}}, {32, {3, 16416, 5}}, {64, {2, 32800, 1}}, {96, {3, 8200, 4}}};
  int sets = 0;
  for (stk::Isa isa : {stk::Isa::Avx2, stk::Isa::Avx512}) {
    const stk::KernelSet* k = stk::kernels_for(isa);
    if (k == nullptr) continue;
    ++sets;
    for (WeightFormat f : kFormats) {
      for (const Case& cs : cases) {
        const Shape& s = cs.s;
        SCOPED_TRACE(std::string(k->name) + " " + stk::weight_format_name(f) + " g" + std::to_string(cs.group) +
                     " " + std::to_string(s.rows) + "x" + std::to_string(s.cols) + " n" + std::to_string(s.n));
        Packed p = make(f, cs.group, s.rows, s.cols, s.rows + s.cols + cs.group);
        Acts a = make_acts(s.n, s.cols, s.cols + 1);
        const size_t ldy = s.rows + 2;
        const uint32_t groups = (s.cols + 31) / 32;
        stk::MatmulFn fn = k->get(f);
        ASSERT_TRUE(k->wants_q8_activations[uint32_t(f)]);
        std::vector<float> y(ldy * s.n, -1.f), y2(ldy * s.n, -1.f);
        fn(p.view, a.view(), y.data(), ldy, 0, s.rows);
        const uint32_t mid = (s.rows + 1) / 2;
        fn(p.view, a.view(), y2.data(), ldy, mid, s.rows);
        fn(p.view, a.view(), y2.data(), ldy, 0, mid);
        for (uint32_t t = 0; t < s.n; ++t) {
          std::vector<float> y1(ldy, -1.f);
          const stk::Activations one{a.x.data() + t * a.ld, a.ld, 1, a.q.data() + t * a.ldq,
                                     a.scales.data() + size_t(t) * groups, a.ldq};
          fn(p.view, one, y1.data(), ldy, 0, s.rows);
          for (uint32_t r = 0; r < s.rows; ++r) {
            double acc = 0, m = 0;
            for (uint32_t c = 0; c < s.cols; ++c) {
              acc += double(p.q.value(r, c)) * a.xq[t * a.ld + c];
              m += std::fabs(double(p.q.value(r, c)) * a.xq[t * a.ld + c]);
            }
            ASSERT_NEAR(y[t * ldy + r], acc, 1e-5 * m + 1e-6) << "r" << r << " t" << t;
            ASSERT_EQ(y[t * ldy + r], y2[t * ldy + r]) << "row split, r" << r << " t" << t;
            ASSERT_EQ(y[t * ldy + r], y1[r]) << "token alone, r" << r << " t" << t;
          }
          ASSERT_EQ(y1[s.rows], -1.f);  // nothing written outside [r0, r1)
        }
      }
    }
  }
  if (sets == 0) GTEST_SKIP() << "no x86 SIMD kernels on this CPU";
}
#endif

// ---------------------------------------------------------------------------
// Q4K, Q3K, Q2K, T2K: quantized group scales, 16-code blocks (runtime/lowbit.h).

const WeightFormat kKFormats[] = {WeightFormat::Q4K, WeightFormat::Q3K, WeightFormat::Q2K, WeightFormat::T2K};
const Shape kKShapes[] = {{1, 1, 1},   {1, 300, 1}, {37, 1, 2},  {5, 64, 1},  {7, 172, 3}, {13, 33, 2},
                          {3, 257, 1}, {64, 172, 4}, {172, 64, 1}, {2, 15, 5}, {3, 17, 2},  {4, 1000, 1}, {3, 40, 70}};  // 70 tokens: more than one chunk of 64

TEST(LowbitK, ByteSizeValidation) {
  uint64_t out = 0;
  uint32_t ok[4] = {16, 0, 5, 0};
  const float one = 1.0f;
  std::memcpy(&ok[1], &one, 4);
  // 7 x 172, group 16: 11 blocks of 8 bytes per row (176 code slots), then
  // 11 scale codes and 11 zero codes per row.
  ASSERT_TRUE(stk::weight_format_bytes(WeightFormat::Q4K, 7, 172, ok, &out));
  EXPECT_EQ(out, 7u * 88u + (640u - 616u) + 7u * 22u);
  ASSERT_TRUE(stk::weight_format_bytes(WeightFormat::T2K, 1, 64, ok, &out));
  EXPECT_EQ(out, 64u + 4u);  // 4 blocks x 4 bytes, aligned to 64, then 4 scale codes
  ASSERT_TRUE(stk::weight_format_bytes(WeightFormat::Q3K, 0xFFFFFFFFu, 0xFFFFFFFFu, ok, &out));  // no wrap
  EXPECT_EQ(out, 0xFFFFFFFFull * (0x10000000ull * 6) + 0xFFFFFFFFull * (0x10000000ull * 2));
  for (uint32_t g : {0u, 8u, 24u, 272u, 512u}) {
    uint32_t p[4] = {g, ok[1], 5, 0};
    EXPECT_FALSE(stk::weight_format_bytes(WeightFormat::Q2K, 4, 64, p, &out)) << g;
  }
  for (float d : {0.0f, -0.5f, std::nanf(""), INFINITY, 1e30f}) {
    uint32_t p[4] = {16, 0, 5, 0};
    std::memcpy(&p[1], &d, 4);
    EXPECT_FALSE(stk::weight_format_bytes(WeightFormat::Q4K, 4, 64, p, &out)) << d;
  }
  for (uint32_t sh : {0u, 1u, 7u}) {
    uint32_t p[4] = {16, ok[1], sh, 0};
    EXPECT_FALSE(stk::weight_format_bytes(WeightFormat::Q4K, 4, 64, p, &out)) << sh;
  }
  uint32_t p3[4] = {16, ok[1], 5, 1};
  EXPECT_FALSE(stk::weight_format_bytes(WeightFormat::Q4K, 4, 64, p3, &out));
}

// The scale table: exact powers of two at whole steps, monotone in between.
TEST(LowbitK, ScaleCodesAreLogarithmic) {
  for (uint32_t sh = 2; sh <= 6; ++sh) {
    for (uint32_t e = 0; e < 256; ++e) {
      const double want = 3.0 * std::exp2(-double(e) / double(1u << sh));
      EXPECT_NEAR(stk::lowbitk_scale(3.0f, sh, e), want, want * 1e-6) << sh << " " << e;
      if (e % (1u << sh) == 0) EXPECT_EQ(stk::lowbitk_scale(3.0f, sh, e), float(want));
    }
  }
}

TEST(LowbitK, DequantizeRowMatchesHostDecodeAndErrorBound) {
  for (WeightFormat f : kKFormats) {
    for (uint32_t g : {16u, 32u, 48u, 256u}) {
      for (const Shape& s : kKShapes) {
        SCOPED_TRACE(std::string(stk::weight_format_name(f)) + " g" + std::to_string(g) + " " +
                     std::to_string(s.rows) + "x" + std::to_string(s.cols));
        std::mt19937 rng(s.rows * 31 + s.cols + g);
        std::normal_distribution<float> nd(0.f, 0.05f);
        std::vector<float> w(size_t(s.rows) * s.cols);
        for (size_t i = 0; i < w.size(); ++i) w[i] = nd(rng) * (i % 11 == 0 ? 5.f : 1.f) + 0.01f;
        Packed p = make(f, g, s.rows, s.cols, s.rows * 31 + s.cols + g);
        // make() draws its own weights; quantize these (plain min/max fit) for the bound.
        FormatSpec spec{f, g};
        LowbitTensor q = stk::host::lowbit_quantize_rtn(w.data(), s.rows, s.cols, spec);
        const double maxq = double(stk::host::lowbit_max_code(f));
        const double unit = double(1u << stk::lowbit_bits(f)) / 256.0;
        const double half_step = std::exp2(1.0 / 64.0) - 1.0;  // log grid 2^(-1/32): nearest within 2^(1/64)
        std::vector<float> row(s.cols);
        for (uint32_t r = 0; r < s.rows; ++r) {
          stk::weight_dequantize_row(p.view, r, row.data());
          for (uint32_t c = 0; c < s.cols; ++c) ASSERT_EQ(row[c], p.q.value(r, c)) << r << "," << c;
          for (uint32_t c = 0; c < s.cols; ++c) {
            const double d = q.d[size_t(r) * q.groups_per_row() + c / g];
            const double x = w[size_t(r) * s.cols + c], err = std::fabs(x - double(q.value(r, c)));
            if (f == WeightFormat::T2K) {  // nearest of {-d, 0, d}
              ASSERT_LE(err, std::max(d / 2, std::fabs(x) - d) + 1e-6 * std::fabs(x)) << r << "," << c;
            } else {  // rounding, the zero's 1/2^(8-bits) step and the scale's log step
              ASSERT_LE(err, d * (0.5 + unit / 2 + maxq * half_step * 1.01) + 1e-7) << r << "," << c;
            }
          }
        }
      }
    }
  }
}

// Groups of 16 with 8-bit scale codes store 16 bits per group like groups of
// 32 with fp16 (d, m) store 32: same bits per weight, smaller groups, so the
// weight error must be lower on weights with outliers.
TEST(LowbitK, SmallGroupsBeatFp16ScalesAtEqualBits) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 0.05f);
  const uint32_t rows = 64, cols = 172;
  std::vector<float> w(size_t(rows) * cols);
  for (size_t i = 0; i < w.size(); ++i) w[i] = nd(rng) * (rng() % 16 == 0 ? 4.f : 1.f);
  const std::pair<const char*, const char*> pairs[] = {{"q4k", "q4g32"}, {"q3k", "q3g32"}, {"q2k", "q2g32"}};
  for (const auto& pr : pairs) {
    double mse[2];
    for (int i = 0; i < 2; ++i) {
      const FormatSpec spec = stk::host::parse_format_spec(i ? pr.second : pr.first);
      LowbitTensor q = stk::host::lowbit_quantize_rtn(w.data(), rows, cols, spec, nullptr, true);
      double e = 0;
      for (uint32_t r = 0; r < rows; ++r)
        for (uint32_t c = 0; c < cols; ++c) e += std::pow(w[size_t(r) * cols + c] - q.value(r, c), 2);
      mse[i] = e;
    }
    EXPECT_LT(mse[0], mse[1]) << pr.first << " vs " << pr.second;
    // Padding aside (176 vs 192 code slots per 172-wide row) the two cost the same.
    EXPECT_LE(stk::host::parse_format_spec(pr.first).bpw(rows, cols),
              stk::host::parse_format_spec(pr.second).bpw(rows, cols));
  }
}

TEST(LowbitK, KernelsMatchIndependentReference) {
  const std::vector<const stk::KernelSet*> sets = stk::test::runnable_kernel_sets();
  for (WeightFormat f : kKFormats) {
    for (uint32_t g : {16u, 32u, 48u, 256u}) {
      for (const Shape& s : kKShapes) {
        Packed p = make(f, g, s.rows, s.cols, s.rows * 7 + s.cols + g);
        Acts a = make_acts(s.n, s.cols, s.cols + 5);
        const size_t ldy = s.rows + 2;
        for (const stk::KernelSet* k : sets) {
          ASSERT_TRUE(k->wants_q8_activations[uint32_t(f)]);
          stk::MatmulFn fn = k->get(f);
          ASSERT_NE(fn, nullptr);
          std::vector<float> y(ldy * s.n, -1.f), y2(ldy * s.n, -1.f);
          fn(p.view, a.view(), y.data(), ldy, 0, s.rows);
          const uint32_t mid = s.rows / 3;
          fn(p.view, a.view(), y2.data(), ldy, 0, mid);
          fn(p.view, a.view(), y2.data(), ldy, mid, s.rows);
          for (uint32_t t = 0; t < s.n; ++t)
            for (uint32_t r = 0; r < s.rows; ++r) {
              double acc = 0, m = 0;
              for (uint32_t c = 0; c < s.cols; ++c) {
                acc += double(p.q.value(r, c)) * a.xq[t * a.ld + c];
                m += std::fabs(double(p.q.value(r, c)) * a.xq[t * a.ld + c]);
              }
              ASSERT_NEAR(y[t * ldy + r], acc, 1e-5 * m + 1e-6)
                  << k->name << " " << stk::weight_format_name(f) << " g" << g << " " << s.rows << "x" << s.cols
                  << " r" << r << " t" << t;
              ASSERT_EQ(y[t * ldy + r], y2[t * ldy + r]);
            }
          EXPECT_EQ(y[s.rows], -1.f);  // nothing written outside [r0, r1)
        }
      }
    }
  }
}

}  // namespace
