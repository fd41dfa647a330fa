// Small helpers shared by the NEON kernels of the low-bit, sparse and
// BitStack formats (lowbit_neon.cpp, sparse_neon.cpp, bitstack_neon.cpp).
// AArch64 and ARMv7-A NEON differ in exactly these places: ARMv7 has no
// across-vector add, no fused multiply-add unless VFPv4 is enabled, and
// (with -mfpu=neon) no fp16 conversion instructions. Everything has internal
// linkage; include only from those files, inside `#if defined(__ARM_NEON)`.
#pragma once
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "runtime/half.h"

namespace stk {
namespace neon {
namespace {

// acc + a * b
inline float32x4_t mla(float32x4_t acc, float32x4_t a, float32x4_t b) {
#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
  return vfmaq_f32(acc, a, b);
#else
  return vmlaq_f32(acc, a, b);
#endif
}

// acc + a * s
inline float32x4_t mla_n(float32x4_t acc, float32x4_t a, float s) {
#if defined(__aarch64__)
  return vfmaq_n_f32(acc, a, s);
#elif defined(__ARM_FEATURE_FMA)
  return vfmaq_f32(acc, a, vdupq_n_f32(s));
#else
  return vmlaq_n_f32(acc, a, s);
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

inline int32_t hsum(int32x4_t v) {
#if defined(__aarch64__)
  return vaddvq_s32(v);
#else
  int32x2_t s = vadd_s32(vget_low_s32(v), vget_high_s32(v));
  s = vpadd_s32(s, s);
  return vget_lane_s32(s, 0);
#endif
}

// fp16 element i of p (any alignment).
inline float half_at(const void* p, uint64_t i) {
  uint16_t h;
  std::memcpy(&h, static_cast<const uint8_t*>(p) + i * 2, 2);
#if defined(__aarch64__)
  __fp16 f;
  std::memcpy(&f, &h, 2);
  return float(f);
#else
  return half_to_float(h);
#endif
}

// Four fp16 values -> float32x4, exactly (as half_to_float).
inline float32x4_t half4(const uint16_t* p) {
  const uint16x4_t h = vld1_u16(p);
#if defined(__aarch64__)
  return vcvt_f32_f16(vreinterpret_f16_u16(h));
#else
  // Rebias the exponent in integers. Subnormal halves go through an int ->
  // float conversion and a multiply by 2^-24 instead: ARMv7 NEON flushes
  // subnormal float inputs to zero, and their results are normal floats.
  const uint32x4_t w = vmovl_u16(h);
  const uint32x4_t sign = vshlq_n_u32(vandq_u32(w, vdupq_n_u32(0x8000u)), 16);
  const uint32x4_t em = vandq_u32(w, vdupq_n_u32(0x7FFFu));
  const uint32x4_t e = vandq_u32(w, vdupq_n_u32(0x7C00u));
  const uint32x4_t normal = vaddq_u32(vshlq_n_u32(em, 13), vdupq_n_u32(112u << 23));
  const uint32x4_t infnan = vorrq_u32(vshlq_n_u32(em, 13), vdupq_n_u32(0x7F800000u));
  const float32x4_t sub = vmulq_f32(vcvtq_f32_u32(em), vdupq_n_f32(1.0f / 16777216.0f));
  uint32x4_t r = vbslq_u32(vceqq_u32(e, vdupq_n_u32(0x7C00u)), infnan, normal);
  r = vbslq_u32(vceqq_u32(e, vdupq_n_u32(0)), vreinterpretq_u32_f32(sub), r);
  return vreinterpretq_f32_u32(vorrq_u32(r, sign));
#endif
}

}  // namespace
}  // namespace neon
}  // namespace stk
