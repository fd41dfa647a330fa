// AVX2 + FMA kernels. Compiled with -mavx2 -mfma -mf16c; only called after
// run-time detection.
#include <immintrin.h>

#include "runtime/kernels/kernels.h"

namespace stk {
namespace {

inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace

void matmul_f32_avx2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const float* x = a.x;
  const size_t ldx = a.ldx;
  const uint32_t n = a.n;
  const float* W = reinterpret_cast<const float*>(w.data);
  const uint32_t cols = w.cols;
  for (uint32_t r = r0; r < r1; ++r) {
    const float* row = W + size_t(r) * cols;
    for (uint32_t t = 0; t < n; ++t) {
      const float* xt = x + t * ldx;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
      uint32_t c = 0;
      for (; c + 32 <= cols; c += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c), _mm256_loadu_ps(xt + c), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c + 8), _mm256_loadu_ps(xt + c + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c + 16), _mm256_loadu_ps(xt + c + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c + 24), _mm256_loadu_ps(xt + c + 24), a3);
      }
      for (; c + 8 <= cols; c += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c), _mm256_loadu_ps(xt + c), a0);
      float acc = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
      for (; c < cols; ++c) acc += row[c] * xt[c];
      y[t * ldy + r] = acc;
    }
  }
}

void matmul_q8_avx2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const float* x = a.x;
  const size_t ldx = a.ldx;
  const uint32_t n = a.n;
  const uint32_t cols = w.cols;
  const uint32_t groups = q8_groups_per_row(cols);
  const uint32_t full = cols / kQ8Group;
  const int8_t* Q = reinterpret_cast<const int8_t*>(w.data);
  const uint16_t* S = reinterpret_cast<const uint16_t*>(w.data + q8_scales_offset(w.rows, cols));
  for (uint32_t r = r0; r < r1; ++r) {
    const int8_t* q = Q + size_t(r) * cols;
    const uint16_t* s = S + size_t(r) * groups;
    for (uint32_t t = 0; t < n; ++t) {
      const float* xt = x + t * ldx;
      __m256 acc = _mm256_setzero_ps();
      for (uint32_t g = 0; g < full; ++g) {
        const uint32_t c = g * kQ8Group;
        __m256 gs = _mm256_setzero_ps();
        for (uint32_t k = 0; k < kQ8Group; k += 8) {
          __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + c + k));
          __m256 wf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
          gs = _mm256_fmadd_ps(wf, _mm256_loadu_ps(xt + c + k), gs);
        }
        acc = _mm256_fmadd_ps(gs, _mm256_set1_ps(_cvtsh_ss(s[g])), acc);
      }
      float total = hsum256(acc);
      if (full < groups) {  // short last group, scalar
        float gsum = 0.0f;
        for (uint32_t c = full * kQ8Group; c < cols; ++c) gsum += float(q[c]) * xt[c];
        total += gsum * _cvtsh_ss(s[full]);
      }
      y[t * ldy + r] = total;
    }
  }
}


}  // namespace stk
