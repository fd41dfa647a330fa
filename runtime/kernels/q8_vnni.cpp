// AVX-512 VNNI kernel for Q8 weights with the int8 activations the forward
// pass makes (groups of 32, one float scale each), as the scalar reference
// computes them:
//   y = sum_g d_g * xs_g * sum_{c in g} w_c * a_c
// vpdpbusd multiplies unsigned by signed bytes, so the weights go in as
// w + 128 (one xor) and each int32 lane starts from -128 * (its four
// activations), computed once per call: the integer sums are exact for every
// int8 weight, -128 included. Per 8 groups (256 bytes) the fp16 scales are
// one vector, times the activation scales, spread to lanes with vpermps.
//
// One row is streamed at a time, front to back (two rows interleaved defeat
// the hardware prefetcher), and up to four tokens share each weight load.
// Columns are taken in stripes of kStripe so the per-call buffer has a fixed
// size; rows up to kStripe wide (every layer of a 7B model but the widest)
// are one stripe. Only full vectors are loaded in the main loop: masked loads
// that miss the cache are slow on AMD cores.
//
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mf16c;
// kernel_tables.cpp files it only when the CPU reports avx512vnni.
#include <immintrin.h>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/prefetch_x86.h"

namespace stk {
namespace {

constexpr uint32_t kStripe = 8192;  // columns, a multiple of 256
constexpr int kTile = 4;            // tokens per pass over a row

inline __mmask64 mask64(uint32_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }
inline __mmask16 mask16(uint32_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// corr[i] = -128 * (a[4i] + a[4i+1] + a[4i+2] + a[4i+3]) over [0, len), len
// rounded up to 64 with zeros.
void make_corr(const int8_t* a, uint32_t len, int32_t* corr) {
  const __m512i k128 = _mm512_set1_epi8(char(0x80));
  const __m512i zero = _mm512_setzero_si512();
  for (uint32_t c = 0; c < len; c += 64) {
    const __m512i av = c + 64 <= len ? _mm512_loadu_si512(a + c) : _mm512_maskz_loadu_epi8(mask64(len - c), a + c);
    _mm512_store_si512(corr + c / 4, _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, k128, av)));
  }
}

struct Stripe {
  const int8_t* a[kTile];   // activations at the stripe's first column
  const float* xs[kTile];   // activation scales of its first group
  const int32_t* corr[kTile];
  uint32_t len;             // columns in the stripe
};

// Partial sums of one row over one stripe for NT tokens. q and s point at the
// row's stripe start (weights, fp16 group scales).
template <int NT>
inline void row_stripe(const int8_t* q, const uint16_t* s, const Stripe& st, float* out) {
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  // Lane l of 64-byte chunk k of a 256-byte block is in group 2k + l/8.
  const __m512i idx0 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i idx1 = _mm512_add_epi32(idx0, _mm512_set1_epi32(2));
  const __m512i idx2 = _mm512_add_epi32(idx0, _mm512_set1_epi32(4));
  const __m512i idx3 = _mm512_add_epi32(idx0, _mm512_set1_epi32(6));
  // Two accumulators per token (even and odd chunks): one FMA chain would
  // cap a chunk at the FMA latency.
  __m512 acc[NT], acc2[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps(), acc2[t] = _mm512_setzero_ps();
  const uint32_t full = st.len / 256;
  for (uint32_t b = 0; b < full; ++b) {
    const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + b * 8)));
    __m512 dx[NT];
    for (int t = 0; t < NT; ++t) dx[t] = _mm512_castps256_ps512(_mm256_mul_ps(d8, _mm256_loadu_ps(st.xs[t] + b * 8)));
    const int8_t* qb = q + size_t(b) * 256;
    if (NT == 1) {  // decode: memory-bound; keep more misses in flight than the hardware prefetcher does
      for (int k = 0; k < 4; ++k) _mm_prefetch(reinterpret_cast<const char*>(qb + kStreamAhead + 64 * k), _MM_HINT_T0);
    }
#define STK_Q8_CHUNK(k, idx, A)                                                                            \
  {                                                                                                        \
    const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(qb + 64 * (k)), flip);                          \
    for (int t = 0; t < NT; ++t) {                                                                         \
      const __m512i sum = _mm512_dpbusd_epi32(_mm512_load_si512(st.corr[t] + b * 64 + 16 * (k)), wv,       \
                                              _mm512_loadu_si512(st.a[t] + b * 256 + 64 * (k)));           \
      A[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_permutexvar_ps(idx, dx[t]), A[t]);             \
    }                                                                                                      \
  }
    STK_Q8_CHUNK(0, idx0, acc)
    STK_Q8_CHUNK(1, idx1, acc2)
    STK_Q8_CHUNK(2, idx2, acc)
    STK_Q8_CHUNK(3, idx3, acc2)
#undef STK_Q8_CHUNK
  }
  const uint32_t rest = st.len - full * 256;
  if (rest > 0) {  // the last < 8 groups, the last of them maybe short: masked loads
    const uint32_t b = full;
    const __mmask16 gm = mask16((rest + 31) / 32);
    const __m512 d = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(gm, s + b * 8));
    __m512 dx[NT];
    for (int t = 0; t < NT; ++t) dx[t] = _mm512_mul_ps(d, _mm512_maskz_loadu_ps(gm, st.xs[t] + b * 8));
    __m512i idx = idx0;
    for (uint32_t k = 0; k * 64 < rest; ++k) {
      const __mmask64 m = mask64(rest - k * 64);
      const __m512i wv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, q + b * 256 + 64 * k), flip);
      for (int t = 0; t < NT; ++t) {
        const __m512i av = _mm512_maskz_loadu_epi8(m, st.a[t] + b * 256 + 64 * k);
        const __m512i sum = _mm512_dpbusd_epi32(_mm512_load_si512(st.corr[t] + b * 64 + 16 * k), wv, av);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_permutexvar_ps(idx, dx[t]), acc[t]);
      }
      idx = _mm512_add_epi32(idx, _mm512_set1_epi32(2));
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t], acc2[t]));
}

template <int NT>
void tile(const WeightView& w, const Activations& a, uint32_t t0, float* y, size_t ldy, uint32_t r0, uint32_t r1,
          int32_t (*corr)[kStripe / 4]) {
  const uint32_t cols = w.cols, groups = q8_groups_per_row(cols);
  const int8_t* Q = reinterpret_cast<const int8_t*>(w.data);
  const uint16_t* S = reinterpret_cast<const uint16_t*>(w.data + q8_scales_offset(w.rows, cols));
  for (uint32_t c0 = 0; c0 < cols; c0 += kStripe) {
    Stripe st;
    st.len = cols - c0 < kStripe ? cols - c0 : kStripe;
    for (int t = 0; t < NT; ++t) {
      st.a[t] = a.q8 + size_t(t0 + t) * a.ldq + c0;
      st.xs[t] = a.q8_scales + size_t(t0 + t) * groups + c0 / 32;
      make_corr(st.a[t], st.len, corr[t]);
      st.corr[t] = corr[t];
    }
    for (uint32_t r = r0; r < r1; ++r) {
      if (r + kSideRowsAhead < w.rows) prefetch_span(S + size_t(r + kSideRowsAhead) * groups + c0 / 32, (st.len + 31) / 32 * 2);
      float part[NT];
      row_stripe<NT>(Q + size_t(r) * cols + c0, S + size_t(r) * groups + c0 / 32, st, part);
      for (int t = 0; t < NT; ++t) {
        float* o = y + size_t(t0 + t) * ldy + r;
        *o = c0 == 0 ? part[t] : *o + part[t];
      }
    }
  }
}

}  // namespace

void matmul_q8_vnni(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  alignas(64) int32_t corr[kTile][kStripe / 4];
  // Tiles of four tokens, the last < 4 one by one (fewer instantiations; each
  // token's sums are the same either way).
  uint32_t t0 = 0;
  for (; t0 + kTile <= a.n; t0 += kTile) tile<kTile>(w, a, t0, y, ldy, r0, r1, corr);
  for (; t0 < a.n; ++t0) tile<1>(w, a, t0, y, ldy, r0, r1, corr);
}

}  // namespace stk
