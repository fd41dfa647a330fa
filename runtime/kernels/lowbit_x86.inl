// Body of the x86 low-bit kernels, included by lowbit_avx2.cpp and
// lowbit_avx512.cpp after they define
//   STK_LB_DOT(u8codes, s8acts) -> __m256i, 8 int32 partial sums of products
//   STK_LB_NS                      the namespace the kernels go in
//   STK_LB_Q3_ONLY (optional)      define only matmul_q3
// Codes are unpacked to 32 unsigned bytes per block, multiplied with the
// block's 32 int8 activations in integers, and each block's two integer sums
// (codes x acts, acts) are scaled in float by d*xs and m*xs (T2: -d*xs).
#include <immintrin.h>

#include <cstring>

#include "runtime/kernels/avx2_hsum.h"
#include "runtime/kernels/kernels.h"
#include "runtime/kernels/prefetch_x86.h"
#include "runtime/lowbit.h"

namespace stk {
namespace STK_LB_NS {
namespace {

inline __m256i decode_q4(const uint8_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

inline __m256i decode_q2(const uint8_t* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  const __m256i b = _mm256_srlv_epi64(_mm256_set1_epi64x(v), _mm256_set_epi64x(6, 4, 2, 0));
  return _mm256_and_si256(b, _mm256_set1_epi8(3));
}

inline __m256i decode_q3(const uint8_t* p) {
  int32_t hi;
  std::memcpy(&hi, p + 8, 4);
  const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
  __m256i h = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(hi), shuf), bit);
  h = _mm256_and_si256(_mm256_cmpeq_epi8(h, bit), _mm256_set1_epi8(4));
  return _mm256_or_si256(decode_q2(p), h);
}

template <int Bits>
inline __m256i decode(const uint8_t* p) {
  if (Bits == 4) return decode_q4(p);
  if (Bits == 3) return decode_q3(p);
  return decode_q2(p);
}

// Blocks per row the kernel keeps per-token activation sums for on the stack
// (kMaxDim / 32); wider rows, impossible in a valid model, write nothing.
constexpr uint32_t kMaxBlocks = 2048;

// 16 bytes of fp16 starting at p, of which only `avail` (< 8) halves may be
// read: the rest are zero.
inline __m256 load_halves(const uint16_t* p, uint32_t avail) {
  if (avail >= 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(tmp, p, avail * 2);
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tmp)));
}

// Up to 4 tokens share each decoded block (batched prefill); bsum holds,
// per token of the tile, activation scale * sum of int8 activations per block.
template <int Bits, bool Ternary, int NT>
void rows_tile(const WeightView& w, const LowbitLayout& L, const int8_t* const* aq, const float* const* as,
               const float (*bsum)[kMaxBlocks], float* const* yt, uint32_t r0, uint32_t r1) {
  const uint32_t nb = L.blocks_per_row, ng = L.groups_per_row;
  const uint32_t bpg = L.group / kLowbitBlock;  // blocks per group, 1..8 (not always a power of two)
  const uint32_t full8 = nb / 8 * 8;
  // A step of 8 blocks starts at block `at` of its first group g0 (at < bpg):
  // lane k of the 8 scales loaded from g0 -> the scale of block k's group.
  __m256i expand[8];
  uint32_t next_at[8], next_g[8];
  for (uint32_t at = 0; at < bpg; ++at) {
    alignas(32) int32_t lane[8];
    for (uint32_t k = 0; k < 8; ++k) lane[k] = int32_t((at + k) / bpg);
    expand[at] = _mm256_load_si256(reinterpret_cast<const __m256i*>(lane));
    next_at[at] = (at + 8) % bpg;
    next_g[at] = (at + 8) / bpg;
  }
  for (uint32_t r = r0; r < r1; ++r) {
    if (r + kSideRowsAhead < w.rows) {  // a row's scales, once (prefetch_x86.h)
      prefetch_span(w.data + L.scales_offset + uint64_t(r + kSideRowsAhead) * L.row_scale_bytes, L.row_scale_bytes);
    }
    const uint8_t* codes = w.data + uint64_t(r) * L.row_code_bytes;
    const uint16_t* dp = reinterpret_cast<const uint16_t*>(w.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes);
    const uint16_t* mp = dp + ng;
    __m256 acc[NT], macc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps(), macc[t] = _mm256_setzero_ps();
    uint32_t b0 = 0, g0 = 0, at = 0;
    for (; b0 < full8; b0 += 8, g0 += next_g[at], at = next_at[at]) {
      const __m256 d8 = _mm256_permutevar8x32_ps(load_halves(dp + g0, ng - g0), expand[at]);
      const __m256 m8 = Ternary ? d8 : _mm256_permutevar8x32_ps(load_halves(mp + g0, ng - g0), expand[at]);
      __m256 dx[NT];
      for (int t = 0; t < NT; ++t) {
        const __m256 bs8 = _mm256_load_ps(bsum[t] + b0);
        // T2: d * xs * (sum q*a - sum a); the "- sum a" part here.
        macc[t] = Ternary ? _mm256_fnmadd_ps(m8, bs8, macc[t]) : _mm256_fmadd_ps(m8, bs8, macc[t]);
        dx[t] = _mm256_mul_ps(d8, _mm256_loadu_ps(as[t] + b0));
      }
      const uint8_t* blk = codes + b0 * (Bits * 4);
      if (NT == 1) {  // decode: memory-bound; keep more misses in flight than the hardware prefetcher does
        for (uint32_t o = 0; o < 8 * Bits * 4; o += 64) _mm_prefetch(reinterpret_cast<const char*>(blk + kStreamAhead + o), _MM_HINT_T0);
      }
      for (int k = 0; k < 8; ++k) {
        const __m256i q = decode<Bits>(blk + k * (Bits * 4));
        const __m256i sel = _mm256_set1_epi32(k);
        for (int t = 0; t < NT; ++t) {
          const __m256i av =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq[t] + (b0 + uint32_t(k)) * kLowbitBlock));
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(STK_LB_DOT(q, av)), _mm256_permutevar8x32_ps(dx[t], sel), acc[t]);
        }
      }
    }
    float tail[NT];
    for (int t = 0; t < NT; ++t) tail[t] = 0.0f;
    for (uint32_t b = b0; b < nb; ++b) {  // the last nb % 8 blocks, one at a time
      const uint32_t g = b / bpg;
      const __m256i q = decode<Bits>(codes + b * (Bits * 4));
      const float d = _cvtsh_ss(dp[g]);
      const float m = Ternary ? -d : _cvtsh_ss(mp[g]);
      for (int t = 0; t < NT; ++t) {
        const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq[t] + b * kLowbitBlock));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(STK_LB_DOT(q, av)), _mm256_set1_ps(d * as[t][b]), acc[t]);
        tail[t] += m * bsum[t][b];
      }
    }
    for (int t = 0; t < NT; ++t) yt[t][r] = hsum256(acc[t]) + (hsum256(macc[t]) + tail[t]);
  }
}

template <int Bits, bool Ternary>
void kernel(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  LowbitLayout L;
  if (!lowbit_layout(w.format, w.rows, w.cols, w.params, &L)) return;
  const uint32_t nb = L.blocks_per_row;
  if (nb > kMaxBlocks) return;
  const uint32_t act_groups = (w.cols + 31) / 32;
  const __m256i ones = _mm256_set1_epi8(1);
  alignas(32) float bsum[4][kMaxBlocks];
  for (uint32_t t0 = 0; t0 < a.n; t0 += 4) {
    const uint32_t nt = a.n - t0 < 4 ? a.n - t0 : 4;
    const int8_t* aq[4];
    const float* as[4];
    float* yt[4];
    for (uint32_t i = 0; i < nt; ++i) {
      const uint32_t t = t0 + i;
      aq[i] = a.q8 + t * a.ldq;
      as[i] = a.q8_scales + size_t(t) * act_groups;
      yt[i] = y + t * ldy;
      for (uint32_t b = 0; b < nb; ++b) {
        const __m256i s =
            STK_LB_DOT(ones, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq[i] + b * kLowbitBlock)));
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
        bsum[i][b] = as[i][b] * float(_mm_cvtsi128_si32(h));
      }
    }
    switch (nt) {
      case 1: rows_tile<Bits, Ternary, 1>(w, L, aq, as, bsum, yt, r0, r1); break;
      case 2: rows_tile<Bits, Ternary, 2>(w, L, aq, as, bsum, yt, r0, r1); break;
      case 3: rows_tile<Bits, Ternary, 3>(w, L, aq, as, bsum, yt, r0, r1); break;
      default: rows_tile<Bits, Ternary, 4>(w, L, aq, as, bsum, yt, r0, r1); break;
    }
  }
}

}  // namespace

void matmul_q3(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  kernel<3, false>(w, a, y, ldy, r0, r1);
}
#if !defined(STK_LB_Q3_ONLY)  // lowbit_avx512.cpp has its own Q4, Q2 and T2
void matmul_q4(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  kernel<4, false>(w, a, y, ldy, r0, r1);
}
void matmul_q2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  kernel<2, false>(w, a, y, ldy, r0, r1);
}
void matmul_t2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  kernel<2, true>(w, a, y, ldy, r0, r1);
}
#endif

}  // namespace STK_LB_NS
}  // namespace stk
