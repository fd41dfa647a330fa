// AVX-512 VNNI low-bit kernels: the AVX2 kernel shape with vpdpbusd (256-bit,
// AVX512-VL) doing multiply and add of bytes in one instruction. Compiled with
// -mavx512f -mavx512bw -mavx512vl -mavx512vnni; kernel_tables.cpp files them
// only when the CPU reports avx512vnni.
#include <immintrin.h>

static inline __m256i stk_lb_dot_vnni(__m256i u8, __m256i s8) {
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u8, s8);
}
#define STK_LB_DOT(u, s) stk_lb_dot_vnni(u, s)
#define STK_LB_NS lowbit_vnni
#include "runtime/kernels/lowbit_x86.inl"
