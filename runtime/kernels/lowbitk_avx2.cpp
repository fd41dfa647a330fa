// AVX2 kernels for Q4K, Q3K, Q2K, T2K (runtime/lowbit.h). Compiled with
// -mavx2 -mfma -mf16c; only called after run-time detection.
//
// Two 16-blocks (one int8 activation group of 32) are unpacked into one
// 32-byte vector in natural code order, so the activations are read as the
// forward pass wrote them, and multiplied with vpmaddubsw. Per step of 8
// blocks the four pair products are reduced with vphaddw + vpmaddwd to one
// int32 per block (exact: a block's partial sums stay below 2^15), lanes in
// the order kOrder; the per-block operands (scales, activation sums) are
// arranged in that order too, so no lane moves. The scalar kernel's term
//   xs * (d * 2^(b-8)) * (2^(8-b) * sum q*a - z * sum a)
// is computed as (d * xs) * (sum q*a - z * 2^(b-8) * sum a) (T2K:
// z * 2^(b-8) = 1): the second factor is a multiple of 2^(b-8) below 2^16,
// so one FNMADD gives it exactly, and each block's value equals the scalar
// kernel's; only the float accumulation order differs. Group scales are
// computed per 8 groups with the float operations of lowbitk_scale.
// Up to four tokens share each unpacked pair; columns go in stripes so the
// per-call buffers have a fixed size. Every token sums its blocks in the
// same order whatever the batch or the rows.
#include <immintrin.h>

#include <cstring>

#include "runtime/kernels/avx2_hsum.h"
#include "runtime/kernels/kernels.h"
#include "runtime/kernels/prefetch_x86.h"
#include "runtime/lowbit.h"

namespace stk {
namespace lowbitk_avx2 {
namespace {

// Two blocks (2 * 4 * Bits bytes at p) -> 32 code bytes, block 0 in the low
// 128-bit lane. The caller guarantees the bytes are readable.
inline __m256i decode_q4k(const uint8_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(v, m), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
  // lo = codes 0-7 of both blocks, hi = codes 8-15.
  return _mm256_set_m128i(_mm_unpackhi_epi64(lo, hi), _mm_unpacklo_epi64(lo, hi));
}

// Dword k of each lane shifted by 2k: byte i of dword k = bits 2k.. of byte i = code 4k + i.
inline __m256i spread_q2k(__m256i dwords) {
  return _mm256_and_si256(_mm256_srlv_epi32(dwords, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6)), _mm256_set1_epi8(3));
}

inline __m256i decode_q2k(const uint8_t* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  const __m256i b = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(_mm_cvtsi64_si128(v)),
                                                _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
  return spread_q2k(b);
}

inline __m256i decode_q3k(const uint8_t* p) {
  int64_t v0;
  int32_t v1;
  std::memcpy(&v0, p, 8);
  std::memcpy(&v1, p + 8, 4);
  const __m128i v = _mm_insert_epi32(_mm_cvtsi64_si128(v0), v1, 2);
  const __m256i vv = _mm256_set_m128i(v, v);
  // Low bits: dwords at bytes 0 and 6; high bits: u16 at bytes 4 and 10, code j <- bit j.
  const __m256i lo_idx = _mm256_setr_epi8(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3,  //
                                          6, 7, 8, 9, 6, 7, 8, 9, 6, 7, 8, 9, 6, 7, 8, 9);
  const __m256i hi_idx = _mm256_setr_epi8(4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5,  //
                                          10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11);
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
  __m256i h = _mm256_and_si256(_mm256_shuffle_epi8(vv, hi_idx), bit);
  h = _mm256_and_si256(_mm256_cmpeq_epi8(h, bit), _mm256_set1_epi8(4));
  return _mm256_or_si256(spread_q2k(_mm256_shuffle_epi8(vv, lo_idx)), h);
}

template <int Bits>
inline __m256i decode(const uint8_t* p) {
  if (Bits == 4) return decode_q4k(p);
  if (Bits == 3) return decode_q3k(p);
  return decode_q2k(p);
}

// 8 bytes from p of which only `avail` may be read, zero-extended to int32.
inline __m256i load_u8x8(const uint8_t* p, uint32_t avail) {
  int64_t v = 0;
  if (avail >= 8) {
    std::memcpy(&v, p, 8);  // a plain load (a variable-length memcpy would be a call)
  } else {
    for (uint32_t i = 0; i < avail; ++i) v |= int64_t(p[i]) << (8 * i);
  }
  return _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v));
}

// The 2^shift fractions a log step uses, F[j << (6 - shift)], 8 per vector
// (vpermps selects from them: a gather costs more on AMD cores).
struct FracTable {
  __m256 v[8];
  uint32_t shift, vectors;
};

inline void frac_table(uint32_t shift, FracTable* T) {
  alignas(32) float f[64] = {};
  for (uint32_t j = 0; j < (1u << shift); ++j) f[j] = kLowbitKFrac[j << (6 - shift)];
  T->shift = shift;
  T->vectors = shift <= 3 ? 1 : 1u << (shift - 3);
  for (uint32_t i = 0; i < 8; ++i) T->v[i] = _mm256_load_ps(f + 8 * i);
}

// d = D * F[k] * 2^-whole for 8 scale codes, the float operations of lowbitk_scale.
inline __m256 group_scales(__m256i e, __m256 D, const FracTable& T) {
  const __m128i sh = _mm_cvtsi32_si128(int(T.shift));
  const __m256i whole = _mm256_srl_epi32(e, sh);
  const __m256i j = _mm256_and_si256(e, _mm256_set1_epi32((1 << T.shift) - 1));
  __m256 f = _mm256_permutevar8x32_ps(T.v[0], j);
  const __m256i hi = _mm256_srli_epi32(j, 3);
  for (uint32_t i = 1; i < T.vectors; ++i) {
    const __m256 m = _mm256_castsi256_ps(_mm256_cmpeq_epi32(hi, _mm256_set1_epi32(int(i))));
    f = _mm256_blendv_ps(f, _mm256_permutevar8x32_ps(T.v[i], j), m);
  }
  const __m256 pow2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_sub_epi32(_mm256_set1_epi32(127), whole), 23));
  return _mm256_mul_ps(_mm256_mul_ps(D, f), pow2);
}

// Lane i of a step's reduced vector holds block kOrder[i] of the step (the
// order vphaddw leaves them in); block j sits in lane kLane[j].
constexpr uint32_t kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
constexpr uint32_t kLane[8] = {0, 4, 1, 5, 2, 6, 3, 7};

// Blocks per stripe: the per-token arrays below have this fixed size, wider
// rows go in stripes (a multiple of 8 blocks; stripes need not align with groups).
constexpr uint32_t kStripe = 512;
constexpr int kTile = 4;  // tokens sharing each decoded block pair

// Per token and stripe, per block in kOrder within each 8: xs (the
// activation scale of its group of 32) and the sum of its activations;
// zero past the last block (up to a multiple of 8 blocks).
struct TokenPrep {
  alignas(32) float xs[kStripe];
  alignas(32) float asum[kStripe];
};

void prepare(const int8_t* aq, const float* xs, uint32_t nbs, TokenPrep* P) {
  const __m256i ones = _mm256_set1_epi8(1);
  const uint32_t padded = (nbs + 7) / 8 * 8;
  for (uint32_t b = 0; b < padded; ++b) P->xs[b] = P->asum[b] = 0.0f;
  for (uint32_t p = 0; 2 * p < nbs; ++p) {  // activation groups (padded with zeros by the forward pass)
    const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq + p * 32))),
                                        _mm256_set1_epi16(1));
    const __m256i h = _mm256_hadd_epi32(s, s);
    const __m256i h2 = _mm256_hadd_epi32(h, h);  // low lane: block 2p's sum, high lane: block 2p+1's
    for (uint32_t i = 0; i < 2 && 2 * p + i < nbs; ++i) {
      const uint32_t b = 2 * p + i, at = b / 8 * 8 + kLane[b % 8];
      P->xs[at] = xs[p];
      P->asum[at] = float(_mm_cvtsi128_si32(i ? _mm256_extracti128_si256(h2, 1) : _mm256_castsi256_si128(h2)));
    }
  }
}

struct StripeArgs {
  uint32_t b0, nbs;  // first block, blocks
  const TokenPrep* prep;
  float* y[kTile];          // output row of each token
  const int8_t* aq[kTile];  // activations at the stripe's first block
  bool first;               // the row's first stripe: store, else add
};

template <int Bits, bool Ternary, int NT>
void rows(const WeightView& w, const LowbitKLayout& L, const StripeArgs& sa, uint32_t r0, uint32_t r1) {
  constexpr uint32_t BB = Bits * 2;  // bytes per 16-block
  const uint32_t ng = L.groups_per_row, bpg = L.group / kLowbitKBlock;  // 1..16 blocks per group
  const __m256 D = _mm256_set1_ps(L.scale);
  const __m256 unit = _mm256_set1_ps(float(1u << Bits) / 256.0f);  // 2^(bits-8), exact
  // A step of 8 blocks starts at block `at` of group g0: lane i of the 8
  // scales computed from g0 on -> the scale of block kOrder[i]'s group.
  __m256i expand[16];
  uint32_t next_at[16], next_g[16];
  for (uint32_t at = 0; at < bpg; ++at) {
    alignas(32) int32_t lane[8];
    for (uint32_t i = 0; i < 8; ++i) lane[i] = int32_t((at + kOrder[i]) / bpg);
    expand[at] = _mm256_load_si256(reinterpret_cast<const __m256i*>(lane));
    next_at[at] = (at + 8) % bpg;
    next_g[at] = (at + 8) / bpg;
  }
  FracTable F;
  frac_table(L.shift, &F);
  const TokenPrep* P = sa.prep;
  const uint32_t steps = (sa.nbs + 7) / 8;
  const __m256i ones16 = _mm256_set1_epi16(1);
  for (uint32_t r = r0; r < r1; ++r) {
    if (sa.b0 == 0 && r + kSideRowsAhead < w.rows) {  // a row's scales, once (prefetch_x86.h)
      prefetch_span(w.data + L.scales_offset + uint64_t(r + kSideRowsAhead) * L.row_scale_bytes, L.row_scale_bytes);
    }
    const uint8_t* codes = w.data + uint64_t(r) * L.row_code_bytes + uint64_t(sa.b0) * BB;
    const uint8_t* ep = w.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes;
    const uint8_t* zp = ep + ng;
    // Even and odd steps add into separate sums (one FMA chain would cap a
    // step at the FMA latency).
    __m256 acc[NT], acc2[NT];
    for (int t = 0; t < NT; ++t) acc[t] = acc2[t] = _mm256_setzero_ps();
    uint32_t g0 = sa.b0 / bpg, at = sa.b0 % bpg;
    for (uint32_t k = 0; k < steps; ++k, g0 += next_g[at], at = next_at[at]) {
      const uint32_t b = k * 8, nblk = sa.nbs - b < 8 ? sa.nbs - b : 8;
      // Groups past the row read as e = z = 0 (their blocks' codes and activations are 0).
      const __m256 d8 = _mm256_permutevar8x32_ps(group_scales(load_u8x8(ep + g0, ng - g0), D, F), expand[at]);
      const __m256 zu8 =
          Ternary ? _mm256_set1_ps(1.0f)
                  : _mm256_permutevar8x32_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(load_u8x8(zp + g0, ng - g0)), unit), expand[at]);
      const uint8_t* ck = codes + uint64_t(b) * BB;
      if (NT == 1) _mm_prefetch(reinterpret_cast<const char*>(ck + kStreamAhead), _MM_HINT_T0);  // decode: memory-bound
      alignas(32) uint8_t tmp[8 * BB];
      if (nblk < 8) {  // the stripe's last < 8 blocks: codes past them are never read, they decode as 0
        std::memset(tmp, 0, sizeof tmp);
        std::memcpy(tmp, ck, nblk * BB);
        ck = tmp;
      }
      const uint32_t npairs = (nblk + 1) / 2;
      __m256i q[4];
      for (uint32_t p = 0; p < 4; ++p) q[p] = decode<Bits>(ck + p * 2 * BB);
      for (int t = 0; t < NT; ++t) {
        const int8_t* ap = sa.aq[t] + b * 16;
        __m256i m[4];
        for (uint32_t p = 0; p < 4; ++p) {  // int16 pair sums; pairs past the row (no activations there) are 0
          m[p] = npairs == 4 || p < npairs
                     ? _mm256_maddubs_epi16(q[p], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ap + 32 * p)))
                     : _mm256_setzero_si256();
        }
        const __m256i h = _mm256_hadd_epi16(_mm256_hadd_epi16(m[0], m[1]), _mm256_hadd_epi16(m[2], m[3]));
        const __m256i s = _mm256_madd_epi16(h, ones16);  // block sums, lanes in kOrder
        // Exact: sum q*a - z * 2^(bits-8) * sum a.
        const __m256 v = _mm256_fnmadd_ps(zu8, _mm256_load_ps(P[t].asum + b), _mm256_cvtepi32_ps(s));
        const __m256 dx = _mm256_mul_ps(d8, _mm256_load_ps(P[t].xs + b));
        if (k % 2) {  // not a pointer to either array: keeps both in registers
          acc2[t] = _mm256_fmadd_ps(v, dx, acc2[t]);
        } else {
          acc[t] = _mm256_fmadd_ps(v, dx, acc[t]);
        }
      }
    }
    for (int t = 0; t < NT; ++t) {
      const float part = hsum256(_mm256_add_ps(acc[t], acc2[t]));
      sa.y[t][r] = sa.first ? part : sa.y[t][r] + part;
    }
  }
}

template <int Bits, bool Ternary>
void run(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  LowbitKLayout L;
  if (!lowbitk_layout(w.format, w.rows, w.cols, w.params, &L)) return;  // model_open validated it
  const uint32_t nb = L.blocks_per_row, act_groups = (w.cols + 31) / 32;
  TokenPrep prep[kTile];
  StripeArgs sa;
  sa.prep = prep;
  // Tiles of four tokens, the rest one by one (fewer instantiations; each
  // token's sums are the same either way).
  for (uint32_t t0 = 0, nt; t0 < a.n; t0 += nt) {
    nt = a.n - t0 >= uint32_t(kTile) ? uint32_t(kTile) : 1;
    for (uint32_t b0 = 0; b0 < nb; b0 += kStripe) {
      sa.b0 = b0;
      sa.nbs = nb - b0 < kStripe ? nb - b0 : kStripe;
      sa.first = b0 == 0;
      for (uint32_t i = 0; i < nt; ++i) {
        const size_t t = t0 + i;
        sa.aq[i] = a.q8 + t * a.ldq + size_t(b0) * kLowbitKBlock;
        sa.y[i] = y + t * ldy;
        prepare(sa.aq[i], a.q8_scales + t * act_groups + b0 / 2, sa.nbs, &prep[i]);
      }
      if (nt == 1) {
        rows<Bits, Ternary, 1>(w, L, sa, r0, r1);
      } else {
        rows<Bits, Ternary, kTile>(w, L, sa, r0, r1);
      }
    }
  }
}

}  // namespace

void matmul_q4k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  run<4, false>(w, a, y, ldy, r0, r1);
}
void matmul_q3k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  run<3, false>(w, a, y, ldy, r0, r1);
}
void matmul_q2k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  run<2, false>(w, a, y, ldy, r0, r1);
}
void matmul_t2k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  run<2, true>(w, a, y, ldy, r0, r1);
}

}  // namespace lowbitk_avx2
}  // namespace stk
