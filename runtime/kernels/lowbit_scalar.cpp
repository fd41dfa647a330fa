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

}  // namespace stk
