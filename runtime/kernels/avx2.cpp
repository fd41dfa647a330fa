// AVX2 + FMA kernels. Compiled with -mavx2 -mfma -mf16c; only called after
// run-time detection.
#include <immintrin.h>

#include "runtime/kernels/avx2_hsum.h"
#include "runtime/kernels/kernels.h"
#include "runtime/kernels/prefetch_x86.h"

namespace stk {

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

namespace {

// One group's 8 int32 partial sums of w * a, as floats.
inline __m256 q8_group_dot(const int8_t* w, const int8_t* a, __m256i ones) {
  const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(av, wv)), ones));
}

}  // namespace

// Q8 weights times the int8 activations (matmul_q8_scalar): per group of 32,
// vpmaddubsw takes |w| (unsigned; -128 becomes 128) and a with w's sign
// (|a| <= 127, so no overflow), vpmaddwd sums the pairs; the 8 int32 partial
// sums are scaled by d * xs in float. A short last group is masked in bytes.
void matmul_q8_avx2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const uint32_t n = a.n;
  const uint32_t cols = w.cols;
  const uint32_t groups = q8_groups_per_row(cols);
  const uint32_t full = cols / kQ8Group;
  const int8_t* Q = reinterpret_cast<const int8_t*>(w.data);
  const uint16_t* S = reinterpret_cast<const uint16_t*>(w.data + q8_scales_offset(w.rows, cols));
  const __m256i ones = _mm256_set1_epi16(1);
  for (uint32_t r = r0; r < r1; ++r) {
    const int8_t* q = Q + size_t(r) * cols;
    const uint16_t* s = S + size_t(r) * groups;
    if (r + kSideRowsAhead < w.rows) prefetch_span(S + size_t(r + kSideRowsAhead) * groups, groups * 2);
    for (uint32_t t = 0; t < n; ++t) {
      const int8_t* at = a.q8 + t * a.ldq;
      const float* as = a.q8_scales + size_t(t) * groups;
      // Even and odd groups add into separate sums (one FMA chain would cap
      // a group at the FMA latency).
      __m256 acc = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps();
      uint32_t g = 0;
      for (; g + 8 <= full; g += 8) {  // 8 groups share one vector of d * xs
        const __m256 ds = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + g))),
                                        _mm256_loadu_ps(as + g));
        for (uint32_t k = 0; k < 8; k += 2) {
          const int8_t* qk = q + (g + k) * kQ8Group;
          if (n == 1) _mm_prefetch(reinterpret_cast<const char*>(qk + kStreamAhead), _MM_HINT_T0);  // decode
          acc = _mm256_fmadd_ps(q8_group_dot(qk, at + (g + k) * kQ8Group, ones),
                                _mm256_permutevar8x32_ps(ds, _mm256_set1_epi32(int(k))), acc);
          acc2 = _mm256_fmadd_ps(q8_group_dot(qk + kQ8Group, at + (g + k + 1) * kQ8Group, ones),
                                 _mm256_permutevar8x32_ps(ds, _mm256_set1_epi32(int(k + 1))), acc2);
        }
      }
      for (; g < full; ++g) {
        acc = _mm256_fmadd_ps(q8_group_dot(q + g * kQ8Group, at + g * kQ8Group, ones),
                              _mm256_set1_ps(_cvtsh_ss(s[g]) * as[g]), acc);
      }
      acc = _mm256_add_ps(acc, acc2);
      if (full < groups) {  // short last group: copy its bytes, zeros after
        alignas(32) int8_t wb[kQ8Group] = {0}, ab[kQ8Group] = {0};
        for (uint32_t c = full * kQ8Group; c < cols; ++c) wb[c - full * kQ8Group] = q[c], ab[c - full * kQ8Group] = at[c];
        acc = _mm256_fmadd_ps(q8_group_dot(wb, ab, ones), _mm256_set1_ps(_cvtsh_ss(s[full]) * as[full]), acc);
      }
      y[t * ldy + r] = hsum256(acc);
    }
  }
}

}  // namespace stk
