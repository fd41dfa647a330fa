// AVX-512 kernels (F + BW + VL). Compiled with -mavx512f -mavx512bw -mavx512vl
// -mf16c -mfma; only called after run-time detection says the CPU has them.
#include <immintrin.h>

#include <cstring>

#include "runtime/kernels/kernels.h"

namespace stk {
namespace {

inline __mmask16 tail_mask16(uint32_t left) { return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u); }

}  // namespace

void matmul_f32_avx512(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const float* x = a.x;
  const size_t ldx = a.ldx;
  const uint32_t n = a.n;
  const float* W = reinterpret_cast<const float*>(w.data);
  const uint32_t cols = w.cols;
  for (uint32_t r = r0; r < r1; ++r) {
    const float* row = W + size_t(r) * cols;
    for (uint32_t t = 0; t < n; ++t) {
      const float* xt = x + t * ldx;
      __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
      __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
      uint32_t c = 0;
      for (; c + 64 <= cols; c += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c), _mm512_loadu_ps(xt + c), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c + 16), _mm512_loadu_ps(xt + c + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c + 32), _mm512_loadu_ps(xt + c + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c + 48), _mm512_loadu_ps(xt + c + 48), a3);
      }
      for (; c < cols; c += 16) {
        __mmask16 m = tail_mask16(cols - c);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, row + c), _mm512_maskz_loadu_ps(m, xt + c), a0);
      }
      y[t * ldy + r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    }
  }
}

void matmul_q8_avx512(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const float* x = a.x;
  const size_t ldx = a.ldx;
  const uint32_t n = a.n;
  const uint32_t cols = w.cols;
  const uint32_t groups = q8_groups_per_row(cols);
  const int8_t* Q = reinterpret_cast<const int8_t*>(w.data);
  const uint16_t* S = reinterpret_cast<const uint16_t*>(w.data + q8_scales_offset(w.rows, cols));
  for (uint32_t r = r0; r < r1; ++r) {
    const int8_t* q = Q + size_t(r) * cols;
    const uint16_t* s = S + size_t(r) * groups;
    for (uint32_t t = 0; t < n; ++t) {
      const float* xt = x + t * ldx;
      __m512 acc = _mm512_setzero_ps();
      const uint32_t full = cols / kQ8Group;
      uint32_t g = 0;
      for (; g < full; ++g) {
        const uint32_t c = g * kQ8Group;
        __m256i qq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + c));
        __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(qq)));
        __m512 w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(qq, 1)));
        __m512 gs = _mm512_mul_ps(w0, _mm512_loadu_ps(xt + c));
        gs = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xt + c + 16), gs);
        acc = _mm512_fmadd_ps(gs, _mm512_set1_ps(_cvtsh_ss(s[g])), acc);
      }
      if (g < groups) {  // short last group
        const uint32_t c = g * kQ8Group;
        const uint32_t left = cols - c;
        __mmask16 m0 = tail_mask16(left), m1 = tail_mask16(left > 16 ? left - 16 : 0);
        __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m0, q + c)));
        __m512 w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m1, q + c + 16)));
        __m512 gs = _mm512_mul_ps(w0, _mm512_maskz_loadu_ps(m0, xt + c));
        gs = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(m1, xt + c + 16), gs);
        acc = _mm512_fmadd_ps(gs, _mm512_set1_ps(_cvtsh_ss(s[g])), acc);
      }
      y[t * ldy + r] = _mm512_reduce_add_ps(acc);
    }
  }
}


}  // namespace stk
