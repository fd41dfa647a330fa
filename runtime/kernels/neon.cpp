// NEON kernels for AArch64 (ASIMD) and 32-bit ARMv7-A with NEON.
//
// Same contract and same numerics class as scalar.cpp (f32: float
// activations; Q8: the int8 activations, exact integer sums per group; only
// the float summation order differs). ARMv7 NEON has no
// fused multiply-add unless VFPv4 is enabled and no across-vector add, so
// both are wrapped below; fp16 scales use the hardware conversion on AArch64
// and half.h elsewhere (-mfpu=neon has no fp16 conversion instructions).
#if defined(__ARM_NEON)
#include <arm_neon.h>

#include <cstring>

#include "runtime/half.h"
#include "runtime/kernels/kernels.h"

namespace stk {
namespace {

// acc + a * b
inline float32x4_t mla(float32x4_t acc, float32x4_t a, float32x4_t b) {
#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
  return vfmaq_f32(acc, a, b);
#else
  return vmlaq_f32(acc, a, b);
#endif
}

inline float hsum(float32x4_t v) {
#if defined(__aarch64__)
  return vaddvq_f32(v);
#else
  float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
  s = vpadd_f32(s, s);
  return vget_lane_f32(s, 0);
#endif
}

inline float scale_at(const uint8_t* s, uint32_t g) {
  uint16_t h;
  std::memcpy(&h, s + size_t(g) * 2, 2);
#if defined(__aarch64__)
  __fp16 f;
  std::memcpy(&f, &h, 2);
  return float(f);
#else
  return half_to_float(h);
#endif
}

}  // namespace

void matmul_f32_neon(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const float* x = a.x;
  const size_t ldx = a.ldx;
  const uint32_t n = a.n;
  const float* W = reinterpret_cast<const float*>(w.data);
  const uint32_t cols = w.cols;
  for (uint32_t r = r0; r < r1; ++r) {
    const float* row = W + size_t(r) * cols;
    for (uint32_t t = 0; t < n; ++t) {
      const float* xt = x + t * ldx;
      float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);
      float32x4_t a2 = vdupq_n_f32(0.0f), a3 = vdupq_n_f32(0.0f);
      uint32_t c = 0;
      for (; c + 16 <= cols; c += 16) {
        a0 = mla(a0, vld1q_f32(row + c), vld1q_f32(xt + c));
        a1 = mla(a1, vld1q_f32(row + c + 4), vld1q_f32(xt + c + 4));
        a2 = mla(a2, vld1q_f32(row + c + 8), vld1q_f32(xt + c + 8));
        a3 = mla(a3, vld1q_f32(row + c + 12), vld1q_f32(xt + c + 12));
      }
      for (; c + 4 <= cols; c += 4) a0 = mla(a0, vld1q_f32(row + c), vld1q_f32(xt + c));
      float acc = hsum(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
      for (; c < cols; ++c) acc += row[c] * xt[c];
      y[t * ldy + r] = acc;
    }
  }
}

// Q8 weights times the int8 copy of the activations (as matmul_q8_scalar):
// per group of 32 an exact integer sum, vmull_s8 + vpadalq_s16 (sdot with
// the dot-product extension), then y = sum_g d_g * xs_g * sum. A product of
// two int8 values fits int16 (|-128 * -128| = 2^14); two of them may not, so
// each vmull result is widened into int32 at once. A short last group is
// copied into a zero-padded buffer: the weights of a row are not padded.
inline int32x4_t q8_dot32(const int8_t* w, const int8_t* a) {
  const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16);
  const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, a0), w1, a1);
#else
  int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(w0), vget_low_s8(a0)));
  s = vpadalq_s16(s, vmull_s8(vget_high_s8(w0), vget_high_s8(a0)));
  s = vpadalq_s16(s, vmull_s8(vget_low_s8(w1), vget_low_s8(a1)));
  return vpadalq_s16(s, vmull_s8(vget_high_s8(w1), vget_high_s8(a1)));
#endif
}

void matmul_q8_neon(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const uint32_t cols = w.cols;
  const uint32_t groups = q8_groups_per_row(cols);
  const uint32_t full = cols / kQ8Group;
  const int8_t* Q = reinterpret_cast<const int8_t*>(w.data);
  const uint8_t* S = w.data + q8_scales_offset(w.rows, cols);
  for (uint32_t r = r0; r < r1; ++r) {
    const int8_t* q = Q + size_t(r) * cols;
    const uint8_t* s = S + size_t(r) * groups * 2;
    int8_t tail[kQ8Group] = {0};
    if (full < groups) std::memcpy(tail, q + full * kQ8Group, cols - full * kQ8Group);
    for (uint32_t t = 0; t < a.n; ++t) {
      const int8_t* at = a.q8 + t * a.ldq;
      const float* as = a.q8_scales + size_t(t) * groups;
      float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);  // even and odd groups
      uint32_t g = 0;
      for (; g + 2 <= full; g += 2) {
        acc0 = mla(acc0, vcvtq_f32_s32(q8_dot32(q + g * kQ8Group, at + g * kQ8Group)),
                   vdupq_n_f32(scale_at(s, g) * as[g]));
        acc1 = mla(acc1, vcvtq_f32_s32(q8_dot32(q + (g + 1) * kQ8Group, at + (g + 1) * kQ8Group)),
                   vdupq_n_f32(scale_at(s, g + 1) * as[g + 1]));
      }
      if (g < full) {
        acc0 = mla(acc0, vcvtq_f32_s32(q8_dot32(q + g * kQ8Group, at + g * kQ8Group)),
                   vdupq_n_f32(scale_at(s, g) * as[g]));
      }
      if (full < groups) {  // the int8 activations are zero-padded to whole groups
        acc1 = mla(acc1, vcvtq_f32_s32(q8_dot32(tail, at + full * kQ8Group)),
                   vdupq_n_f32(scale_at(s, full) * as[full]));
      }
      y[t * ldy + r] = hsum(vaddq_f32(acc0, acc1));
    }
  }
}

}  // namespace stk
#endif  // __ARM_NEON
