// Dot product of float vectors for the forward pass's own arithmetic
// (attention scores), outside the weight kernels.
//
// A plain `s += a[i] * b[i]` loop is one dependent chain of adds: the compiler
// may not reorder float sums, so it stays scalar and runs at one element per
// add latency. Here lane l sums the elements l, l + 16, l + 32, ... and the 16
// lanes are added pairwise at the end (under 16 elements, one plain chain):
// a fixed order for each n, so the same result on any thread count, ISA
// clone (widest_isa.h) or target. The lanes are a GCC vector type rather than
// an array the auto-vectoriser may or may not turn into vector code (it left
// the AVX-512 clone of attention scalar): the compiler maps it onto whatever
// vectors the target has, or scalars. always_inline: otherwise GCC kept it
// out of line, compiled for the baseline (SSE2, its sums spilled to the
// stack), and the AVX-512 clone of attention called that; inlined, the
// TinyLlama shape prefilled a 1000-token prompt at 124-126 instead of
// 102-105 tok/s (stk bench --shapes tinyllama --formats q8 --threads 2
// --prompt 1000, two runs each, AMD Zen 5).
#pragma once
#include <cstdint>
#include <cstring>

namespace stk {

__attribute__((always_inline)) inline float dot_f32(const float* a, const float* b, uint32_t n) {
  typedef float Lanes __attribute__((vector_size(64)));
  constexpr uint32_t kLanes = 16;
  if (n < kLanes) {  // e.g. stories260K's 8-wide heads: lanes and their sum would cost more than they save
    float s = 0.0f;
    for (uint32_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
  }
  Lanes acc = {};
  uint32_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Lanes x, y;
    std::memcpy(&x, a + i, sizeof x);
    std::memcpy(&y, b + i, sizeof y);
    acc += x * y;
  }
  for (uint32_t l = 0; i + l < n; ++l) acc[l] += a[i + l] * b[i + l];
  float r[kLanes];
  std::memcpy(r, &acc, sizeof r);
  for (uint32_t w = kLanes / 2; w > 0; w /= 2) {
    for (uint32_t l = 0; l < w; ++l) r[l] += r[l + w];
  }
  return r[0];
}

}  // namespace stk
