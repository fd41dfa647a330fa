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

}  // namespace stk
