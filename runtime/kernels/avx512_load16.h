// 16-lane tail loads for AVX-512 kernels (include only from files compiled
// with -mavx512f -mavx512bw -mavx512vl -mf16c).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace stk {
// Internal linkage on purpose: each including file is compiled for its own
// ISA extensions, and one merged out-of-line copy could carry instructions
// another file's CPUs lack.
namespace {

inline __mmask16 tail_mask16(uint32_t left) { return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u); }

// 16 fp16 or f32 values, zeros past `left`. A masked load only when the mask
// is partial: masked loads of U, V, s and x, made for every 16 values, took
// about a sixth of the BitStack VNNI kernel's time on an AMD EPYC
// (stories110M shape).
inline __m512 load16(const uint16_t* p, uint32_t left) {
  return _mm512_cvtph_ps(left >= 16 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                                    : _mm256_maskz_loadu_epi16(tail_mask16(left), p));
}
inline __m512 load16(const float* p, uint32_t left) {
  return left >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(tail_mask16(left), p);
}

}  // namespace
}  // namespace stk
