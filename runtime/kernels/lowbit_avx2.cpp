// AVX2 low-bit kernels (integer dot products with vpmaddubsw + vpmaddwd).
// Compiled with -mavx2 -mfma -mf16c; only called after run-time detection.
#include <immintrin.h>

static inline __m256i stk_lb_dot_avx2(__m256i u8, __m256i s8) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u8, s8), _mm256_set1_epi16(1));
}
#define STK_LB_DOT(u, s) stk_lb_dot_avx2(u, s)
#define STK_LB_NS lowbit_avx2
#include "runtime/kernels/lowbit_x86.inl"
