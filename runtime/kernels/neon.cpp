// NEON kernels for AArch64 (ASIMD) and 32-bit ARMv7-A with NEON.
//
// Same contract and same numerics class as scalar.cpp (float activations,
// fp32 accumulation; only the summation order differs). ARMv7 NEON has no
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

// 8 int8 weights -> two float32x4.
inline void widen8(int8x8_t q, float32x4_t* lo, float32x4_t* hi) {
  int16x8_t w16 = vmovl_s8(q);
  *lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w16)));
  *hi = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w16)));
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

void matmul_q8_neon(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const float* x = a.x;
  const size_t ldx = a.ldx;
  const uint32_t n = a.n;
  const uint32_t cols = w.cols;
  const uint32_t groups = q8_groups_per_row(cols);
  const uint32_t full = cols / kQ8Group;
  const int8_t* Q = reinterpret_cast<const int8_t*>(w.data);
  const uint8_t* S = w.data + q8_scales_offset(w.rows, cols);
  for (uint32_t r = r0; r < r1; ++r) {
    const int8_t* q = Q + size_t(r) * cols;
    const uint8_t* s = S + size_t(r) * groups * 2;
    for (uint32_t t = 0; t < n; ++t) {
      const float* xt = x + t * ldx;
      float32x4_t acc = vdupq_n_f32(0.0f);
      for (uint32_t g = 0; g < full; ++g) {
        const uint32_t c = g * kQ8Group;
        const int8x16_t q0 = vld1q_s8(q + c);
        const int8x16_t q1 = vld1q_s8(q + c + 16);
        float32x4_t w0, w1, w2, w3, w4, w5, w6, w7;
        widen8(vget_low_s8(q0), &w0, &w1);
        widen8(vget_high_s8(q0), &w2, &w3);
        widen8(vget_low_s8(q1), &w4, &w5);
        widen8(vget_high_s8(q1), &w6, &w7);
        const float* xc = xt + c;
        float32x4_t g0 = vmulq_f32(w0, vld1q_f32(xc));
        float32x4_t g1 = vmulq_f32(w1, vld1q_f32(xc + 4));
        g0 = mla(g0, w2, vld1q_f32(xc + 8));
        g1 = mla(g1, w3, vld1q_f32(xc + 12));
        g0 = mla(g0, w4, vld1q_f32(xc + 16));
        g1 = mla(g1, w5, vld1q_f32(xc + 20));
        g0 = mla(g0, w6, vld1q_f32(xc + 24));
        g1 = mla(g1, w7, vld1q_f32(xc + 28));
        acc = mla(acc, vaddq_f32(g0, g1), vdupq_n_f32(scale_at(s, g)));
      }
      float total = hsum(acc);
      if (full < groups) {  // short last group
        const uint32_t c0 = full * kQ8Group;
        uint32_t c = c0;
        float32x4_t gs = vdupq_n_f32(0.0f);
        for (; c + 8 <= cols; c += 8) {
          float32x4_t lo, hi;
          widen8(vld1_s8(q + c), &lo, &hi);
          gs = mla(gs, lo, vld1q_f32(xt + c));
          gs = mla(gs, hi, vld1q_f32(xt + c + 4));
        }
        float gsum = hsum(gs);
        for (; c < cols; ++c) gsum += float(q[c]) * xt[c];
        total += gsum * scale_at(s, full);
      }
      y[t * ldy + r] = total;
    }
  }
}

}  // namespace stk
#endif  // __ARM_NEON
