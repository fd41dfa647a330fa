#include "bench/synth_model.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "runtime/half.h"
#include "runtime/lowbit.h"
#include "runtime/weights.h"
#include "tools/host_model.h"
#include "tools/pack.h"
#include "tools/quantize.h"

namespace stk::bench {

ShapeSpec shape_by_name(const std::string& name) {
  if (name == "stories15M") return {name, 288, 768, 6, 6, 6, 32000, true};
  if (name == "stories110M") return {name, 768, 2048, 12, 12, 12, 32000, true};
  if (name == "tinyllama") return {name, 2048, 5632, 22, 32, 4, 32000, false};
  throw std::invalid_argument("unknown shape '" + name + "' (expected stories15M, stories110M or tinyllama)");
}

namespace {

// xorshift64*: fast, deterministic, good enough for random weights.
struct Rng {
  uint64_t s;
  float next() {
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    const uint32_t v = uint32_t((s * 0x2545F4914F6CDD1Dull) >> 40);  // 24 bits
    return (float(v) / float(1u << 24) - 0.5f) * 0.08f;          // uniform, sd ~0.023
  }
  uint64_t bits() {
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
};

// Tensors are synthesised directly in their packed form (random codes or
// floats, small fixed scales): quantizing a billion random floats would take
// minutes and measure nothing the speed depends on.
host::PackedTensor make_tensor(TensorRole role, uint32_t layer, uint32_t rows, uint32_t cols,
                               const host::FormatSpec& spec, Rng* rng) {
  host::PackedTensor p;
  p.name = host::tensor_name(role, layer);
  p.role = role, p.layer = layer, p.rows = rows, p.cols = cols;
  const bool norm = rows == 1;
  p.format = norm ? WeightFormat::F32 : spec.format;
  std::memset(p.params, 0, sizeof p.params);
  if (p.format == WeightFormat::Q8) p.params[0] = kQ8Group;
  if (is_lowbit_format(p.format)) p.params[0] = spec.group;
  if (is_lowbitk_format(p.format)) {  // Q4K..T2K: group, tensor scale D = 0.5, log step 2^-1/32
    const float D = 0.5f;
    p.params[0] = spec.group;
    std::memcpy(&p.params[1], &D, 4);
    p.params[2] = 5;
  }
  uint64_t bytes = 0;
  if (!weight_format_bytes(p.format, rows, cols, p.params, &bytes)) throw std::runtime_error("bench: bad shape");
  p.data.assign(bytes, 0);
  if (p.format == WeightFormat::F32) {
    float* f = reinterpret_cast<float*>(p.data.data());
    for (uint64_t i = 0; i < uint64_t(rows) * cols; ++i) f[i] = norm ? 1.0f : rng->next();
    return p;
  }
  // Random code bytes, then every scale plane entry a small constant.
  uint64_t scales_at = 0, n_scales = 0;
  if (p.format == WeightFormat::Q8) {
    scales_at = q8_scales_offset(rows, cols);
    n_scales = uint64_t(rows) * q8_groups_per_row(cols);
  } else if (is_lowbitk_format(p.format)) {
    LowbitKLayout L;
    lowbitk_layout(p.format, rows, cols, p.params, &L);
    scales_at = L.scales_offset;
  } else {
    LowbitLayout L;
    lowbit_layout(p.format, rows, cols, p.params, &L);
    scales_at = L.scales_offset;
    n_scales = uint64_t(rows) * L.groups_per_row * L.scale_halves;
  }
  for (uint64_t i = 0; i + 8 <= scales_at; i += 8) {
    uint64_t v = rng->bits();
    if (p.format == WeightFormat::Q8) v &= 0x7F7F7F7F7F7F7F7Full;  // 0..127, then centred below
    std::memcpy(p.data.data() + i, &v, 8);
  }
  if (p.format == WeightFormat::Q8) {
    for (uint64_t i = 0; i < scales_at; ++i) p.data[i] = uint8_t(int(p.data[i]) - 64);
  }
  if (is_lowbitk_format(p.format)) {  // u8 scale codes e (d = 0.5 * 2^(-e/32) ~ 0.01), then zeros z
    LowbitKLayout L;
    lowbitk_layout(p.format, rows, cols, p.params, &L);
    for (uint64_t i = 0; i < uint64_t(rows) * L.row_scale_bytes; ++i) {
      const bool zero = !L.ternary && i % L.row_scale_bytes >= L.groups_per_row;
      p.data[scales_at + i] = uint8_t(zero ? 128 : 180 + rng->bits() % 8);
    }
    return p;
  }
  const uint16_t d = float_to_half(p.format == WeightFormat::Q8 ? 0.0004f : 0.01f);
  const uint16_t m = float_to_half(-0.05f);
  for (uint64_t i = 0; i < n_scales; ++i) {
    // Low-bit rows store all d's, then all m's; T2 and Q8 only d's.
    uint16_t h = d;
    if (is_lowbit_format(p.format) && p.format != WeightFormat::T2) {
      LowbitLayout L;
      lowbit_layout(p.format, rows, cols, p.params, &L);
      h = (i % (2 * L.groups_per_row)) < L.groups_per_row ? d : m;
    }
    std::memcpy(p.data.data() + scales_at + i * 2, &h, 2);
  }
  return p;
}

}  // namespace

host::PackedModel synth_model(const ShapeSpec& s, const host::FormatSpec& spec, uint32_t seq_len) {
  host::PackedModel m;
  m.config = {s.dim, s.hidden, s.layers, s.heads, s.kv_heads, s.vocab, seq_len, s.shared_classifier};
  Rng rng{0x9E3779B97F4A7C15ull};
  const uint32_t hs = s.dim / s.heads, kv = s.kv_heads * hs;
  m.tensors.push_back(make_tensor(TensorRole::TokenEmbedding, kNoLayer, s.vocab, s.dim, spec, &rng));
  for (uint32_t l = 0; l < s.layers; ++l) {
    m.tensors.push_back(make_tensor(TensorRole::AttnNorm, l, 1, s.dim, spec, &rng));
    m.tensors.push_back(make_tensor(TensorRole::Wq, l, s.dim, s.dim, spec, &rng));
    m.tensors.push_back(make_tensor(TensorRole::Wk, l, kv, s.dim, spec, &rng));
    m.tensors.push_back(make_tensor(TensorRole::Wv, l, kv, s.dim, spec, &rng));
    m.tensors.push_back(make_tensor(TensorRole::Wo, l, s.dim, s.dim, spec, &rng));
    m.tensors.push_back(make_tensor(TensorRole::FfnNorm, l, 1, s.dim, spec, &rng));
    m.tensors.push_back(make_tensor(TensorRole::W1, l, s.hidden, s.dim, spec, &rng));
    m.tensors.push_back(make_tensor(TensorRole::W2, l, s.dim, s.hidden, spec, &rng));
    m.tensors.push_back(make_tensor(TensorRole::W3, l, s.hidden, s.dim, spec, &rng));
  }
  m.tensors.push_back(make_tensor(TensorRole::FinalNorm, kNoLayer, 1, s.dim, spec, &rng));
  if (!s.shared_classifier) {
    m.tensors.push_back(make_tensor(TensorRole::Classifier, kNoLayer, s.vocab, s.dim, spec, &rng));
  }
  // The bench feeds token ids, but a model needs a tokenizer: a llama2.c
  // tokenizer.bin of made-up pieces, built in memory.
  std::vector<uint8_t> tok;
  auto put32 = [&](uint32_t v) { tok.insert(tok.end(), reinterpret_cast<uint8_t*>(&v), reinterpret_cast<uint8_t*>(&v) + 4); };
  put32(8);
  for (uint32_t i = 0; i < s.vocab; ++i) {
    const std::string piece = "t" + std::to_string(i);
    const float score = -float(i);
    uint32_t sb;
    std::memcpy(&sb, &score, 4);
    put32(sb);
    put32(uint32_t(piece.size()));
    tok.insert(tok.end(), piece.begin(), piece.end());
  }
  m.tokenizer_section = host::tokenizer_section_from_llama2c(tok, s.vocab, "synthetic tokenizer");
  return m;
}

uint64_t weight_bytes_per_token(const host::PackedModel& m) {
  uint64_t b = 0;
  for (const host::PackedTensor& t : m.tensors) {
    if (t.role == TensorRole::TokenEmbedding && !m.config.shared_classifier) continue;
    b += t.data.size();
  }
  return b;
}

}  // namespace stk::bench
