// Portable reference kernels for the low-bit formats (runtime/lowbit.h).
// They multiply the integer codes with the int8 copy of the activations
// (groups of 32, one float scale each) that the kernel table asks for, so
// every ISA computes the same integer sums; only the float accumulation of
// the per-block partial sums differs in rounding order.
//
//   y = sum_blocks xs_b * (d_g * sum_j q_j a_j + m_g * sum_j a_j)      (Q4/Q3/Q2)
//   y = sum_blocks xs_b *  d_g * (sum_j q_j a_j - sum_j a_j)            (T2)
#include "runtime/half.h"
#include "runtime/kernels/kernels.h"
#include "runtime/lowbit.h"

namespace stk {
namespace {

void lowbit_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  LowbitLayout L;
  if (!lowbit_layout(w.format, w.rows, w.cols, w.params, &L)) return;  // model_open validated it
  const bool ternary = w.format == WeightFormat::T2;
  const uint32_t act_groups = (w.cols + 31) / 32;
  const uint32_t blocks_per_group = L.group / kLowbitBlock;
  for (uint32_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.data + uint64_t(r) * L.row_code_bytes;
    const uint8_t* sc = w.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes;
    for (uint32_t t = 0; t < a.n; ++t) {
      const int8_t* aq = a.q8 + t * a.ldq;
      const float* as = a.q8_scales + size_t(t) * act_groups;
      float acc = 0.0f;
      for (uint32_t b = 0; b < L.blocks_per_row; ++b) {
        const uint8_t* blk = codes + b * L.block_bytes;
        const int8_t* ab = aq + b * kLowbitBlock;
        int32_t sq = 0, sa = 0;
        for (uint32_t j = 0; j < kLowbitBlock; ++j) {  // padding activations are 0
          sq += int32_t(lowbit_code(blk, L.bits, j)) * ab[j];
          sa += ab[j];
        }
        const uint32_t g = b / blocks_per_group;
        uint16_t h[2] = {0, 0};
        std::memcpy(&h[0], sc + g * 2, 2);
        if (!ternary) std::memcpy(&h[1], sc + (L.groups_per_row + g) * 2, 2);
        const float d = half_to_float(h[0]);
        const float part = ternary ? d * float(sq - sa) : d * float(sq) + half_to_float(h[1]) * float(sa);
        acc += as[b] * part;
      }
      y[t * ldy + r] = acc;
    }
  }
}

}  // namespace

void matmul_lowbit_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                          uint32_t r1) {
  lowbit_scalar(w, a, y, ldy, r0, r1);
}

// Float-activation reference (no int8 rounding of x): used by tests and to
// measure what the int8 activations cost in accuracy.
void matmul_lowbit_f32act_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                                 uint32_t r1) {
  LowbitLayout L;
  if (!lowbit_layout(w.format, w.rows, w.cols, w.params, &L)) return;
  const bool ternary = w.format == WeightFormat::T2;
  for (uint32_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.data + uint64_t(r) * L.row_code_bytes;
    const uint8_t* sc = w.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes;
    for (uint32_t t = 0; t < a.n; ++t) {
      const float* x = a.x + t * a.ldx;
      float acc = 0.0f;
      for (uint32_t g = 0; g < L.groups_per_row; ++g) {
        const uint32_t c0 = g * L.group, c1 = c0 + L.group < w.cols ? c0 + L.group : w.cols;
        float sq = 0.0f, sx = 0.0f;
        for (uint32_t c = c0; c < c1; ++c) {
          const uint32_t q = lowbit_code(codes + (c / kLowbitBlock) * L.block_bytes, L.bits, c % kLowbitBlock);
          sq += float(q) * x[c];
          sx += x[c];
        }
        uint16_t h[2] = {0, 0};
        std::memcpy(&h[0], sc + g * 2, 2);
        if (!ternary) std::memcpy(&h[1], sc + (L.groups_per_row + g) * 2, 2);
        const float d = half_to_float(h[0]);
        acc += ternary ? d * (sq - sx) : d * sq + half_to_float(h[1]) * sx;
      }
      y[t * ldy + r] = acc;
    }
  }
}

// Q4K, Q3K, Q2K, T2K (runtime/lowbit.h): 16-code blocks, two per int8
// activation group of 32; per block xs * d_g * (sum q a - zero_g * sum a)
// with the zero in 1/2^(8-bits) steps (T2K: zero 1), i.e. in integers
// xs * d_g * 2^(bits-8) * (2^(8-bits) * sum q a - z_g * sum a).
// Each block's codes are unpacked once for up to kTokenChunk tokens; every
// token still sums its blocks in order, so results do not depend on batching.
namespace {

constexpr uint32_t kTokenChunk = 64;

template <uint32_t kBits>
void unpack16(const uint8_t* blk, int32_t* q) {
  for (uint32_t j = 0; j < kLowbitKBlock; ++j) q[j] = int32_t(lowbitk_code(blk, kBits, j));
}

template <uint32_t kBits>
void lowbitk_rows(const WeightView& w, const LowbitKLayout& L, const Activations& a, float* y, size_t ldy,
                  uint32_t r0, uint32_t r1) {
  const float unit = L.ternary ? 1.0f : float(1u << L.bits) / 256.0f;  // 2^(bits-8): exact
  const int32_t qmul = L.ternary ? 1 : int32_t(256u >> L.bits);
  const uint32_t act_groups = (w.cols + 31) / 32;
  const uint32_t blocks_per_group = L.group / kLowbitKBlock;
  for (uint32_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.data + uint64_t(r) * L.row_code_bytes;
    const uint8_t* sc = w.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes;
    for (uint32_t t0 = 0; t0 < a.n; t0 += kTokenChunk) {
      const uint32_t tn = a.n - t0 < kTokenChunk ? a.n - t0 : kTokenChunk;
      float acc[kTokenChunk];
      for (uint32_t t = 0; t < tn; ++t) acc[t] = 0.0f;
      for (uint32_t b = 0; b < L.blocks_per_row; ++b) {
        int32_t q[kLowbitKBlock];
        unpack16<kBits>(codes + b * L.block_bytes, q);
        const uint32_t g = b / blocks_per_group;
        const int32_t z = L.ternary ? 1 : int32_t(sc[L.groups_per_row + g]);
        const float d = lowbitk_scale(L.scale, L.shift, sc[g]) * unit;
        for (uint32_t t = 0; t < tn; ++t) {
          const int8_t* ab = a.q8 + size_t(t0 + t) * a.ldq + b * kLowbitKBlock;  // padding activations are 0
          int32_t sq = 0, sa = 0;
          for (uint32_t j = 0; j < kLowbitKBlock; ++j) {
            sq += q[j] * ab[j];
            sa += ab[j];
          }
          acc[t] += a.q8_scales[size_t(t0 + t) * act_groups + b / 2] * d * float(qmul * sq - z * sa);
        }
      }
      for (uint32_t t = 0; t < tn; ++t) y[size_t(t0 + t) * ldy + r] = acc[t];
    }
  }
}

}  // namespace

void matmul_lowbitk_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                           uint32_t r1) {
  LowbitKLayout L;
  if (!lowbitk_layout(w.format, w.rows, w.cols, w.params, &L)) return;  // model_open validated it
  switch (L.bits) {
    case 4: lowbitk_rows<4>(w, L, a, y, ldy, r0, r1); return;
    case 3: lowbitk_rows<3>(w, L, a, y, ldy, r0, r1); return;
    default: lowbitk_rows<2>(w, L, a, y, ldy, r0, r1); return;
  }
}

}  // namespace stk
