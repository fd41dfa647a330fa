// AVX2 kernels for Q4K, Q3K, Q2K, T2K (integer dot products with vpmaddubsw
// + vpmaddwd; body in lowbitk_x86.inl). Compiled with -mavx2 -mfma -mf16c;
// only called after run-time detection.
#include <immintrin.h>

static inline __m256i stk_lbk_dot_avx2(__m256i u8, __m256i s8) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u8, s8), _mm256_set1_epi16(1));
}
#define STK_LBK_DOT(u, s) stk_lbk_dot_avx2(u, s)
#define STK_LBK_NS lowbitk_avx2
#include "runtime/kernels/lowbitk_x86.inl"
