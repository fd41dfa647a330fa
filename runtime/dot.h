// Dot product of float vectors for the forward pass's own arithmetic
// (attention scores, RMSNorm), outside the weight kernels.
//
// A plain `s += a[i] * b[i]` loop is one dependent chain of adds: the compiler
// may not reorder float sums, so it stays scalar and runs at one element per
// add latency. Here lane l sums the elements l, l + 16, l + 32, ... and the 16
// lanes are added pairwise at the end: a fixed order (the same result on any
// thread count and for any caller) that compilers turn into vector code at the
// baseline ISA (SSE2, NEON) without -ffast-math. On the TinyLlama shape the
// scalar chain made attention about a tenth of a 2-thread Q8 decode step at a
// few hundred positions of context.
#pragma once
#include <cstdint>

namespace stk {

inline float dot_f32(const float* a, const float* b, uint32_t n) {
  constexpr uint32_t kLanes = 16;
  float acc[kLanes] = {};
  const float* const end = a + n;
  for (; end - a >= kLanes; a += kLanes, b += kLanes) {
    for (uint32_t l = 0; l < kLanes; ++l) acc[l] += a[l] * b[l];
  }
  for (uint32_t l = 0; a + l < end; ++l) acc[l] += a[l] * b[l];
  for (uint32_t w = kLanes / 2; w > 0; w /= 2) {
    for (uint32_t l = 0; l < w; ++l) acc[l] += acc[l + w];
  }
  return acc[0];
}

}  // namespace stk
