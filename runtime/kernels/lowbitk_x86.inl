// Body of the 256-bit x86 kernels for Q4K, Q3K, Q2K, T2K (runtime/lowbit.h),
// included by lowbitk_avx2.cpp after it defines
//   STK_LBK_DOT(u8codes, s8acts) -> __m256i, 8 int32 partial sums of products
//   STK_LBK_NS                      the namespace the kernels go in
//
// Two 16-blocks (one int8 activation group of 32) are unpacked into one
// 32-byte vector in natural code order, so the activations are read as the
// forward pass wrote them; int32 lanes 0-3 then hold partial sums (4 codes
// each) of the first block, 4-7 of the second. The scalar kernel's block term
//   xs * (d * 2^(b-8)) * (2^(8-b) * sum q*a - z * sum a)
// is computed per lane as (d * xs) * (sum q*a - z * 2^(b-8) * sum a) (T2K:
// z * 2^(b-8) = 1): the second factor is a multiple of 2^(b-8) below 2^16,
// so one FNMADD gives it exactly from the integer sums, with the lane's
// activation sum made once per call. Each lane's value then differs from the
// scalar kernel's only by float rounding of the accumulation. Group scales
// are computed per 8 groups with the float operations of lowbitk_scale, so
// every kernel decodes the same d.
#include <immintrin.h>

#include <cstring>

#include "runtime/kernels/kernels.h"
#include "runtime/lowbit.h"

namespace stk {
namespace STK_LBK_NS {
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

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 8 bytes from p of which only `avail` may be read, zero-extended to int32.
inline __m256i load_u8x8(const uint8_t* p, uint32_t avail) {
  int64_t v = 0;
  std::memcpy(&v, p, avail >= 8 ? 8 : avail);
  return _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v));
}

// Blocks per stripe: the per-token arrays below have this fixed size, wider
// rows go in stripes (a multiple of 8 blocks; stripes need not align with groups).
constexpr uint32_t kStripe = 512;
constexpr int kTile = 4;  // tokens sharing each decoded block pair

// Per token and stripe: xs per block (the activation scale of its group of
// 32) and, per int32 lane of each block pair's product, the sum of its 4
// activations; zero past the last block (up to a multiple of 8 blocks).
struct TokenPrep {
  alignas(32) float xs[kStripe];
  alignas(32) float asum[kStripe * 4];
};

void prepare(const int8_t* aq, const float* xs, uint32_t nbs, TokenPrep* P) {
  const __m256i ones = _mm256_set1_epi8(1);
  const uint32_t pairs = (nbs + 1) / 2;  // activation groups of this stripe (padded with zeros by the forward pass)
  for (uint32_t p = 0; p < pairs; ++p) {
    const __m256i s = STK_LBK_DOT(ones, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq + p * 32)));
    _mm256_store_ps(P->asum + 8 * p, _mm256_cvtepi32_ps(s));
    P->xs[2 * p] = P->xs[2 * p + 1] = xs[p];
  }
  for (uint32_t b = 2 * pairs; b < (nbs + 7) / 8 * 8; b += 2) {
    P->xs[b] = P->xs[b + 1] = 0.0f;
    _mm256_store_ps(P->asum + 4 * b, _mm256_setzero_ps());
  }
  if (nbs % 2) P->xs[nbs] = 0.0f;
}

// d = D * F[k] * 2^-whole for 8 scale codes, the float operations of lowbitk_scale.
inline __m256 group_scales(__m256i e, __m256 D, uint32_t shift) {
  const __m128i sh = _mm_cvtsi32_si128(int(shift)), fsh = _mm_cvtsi32_si128(int(6 - shift));
  const __m256i whole = _mm256_srl_epi32(e, sh);
  const __m256i frac = _mm256_sll_epi32(_mm256_and_si256(e, _mm256_set1_epi32((1 << shift) - 1)), fsh);
  const __m256 pow2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_sub_epi32(_mm256_set1_epi32(127), whole), 23));
  return _mm256_mul_ps(_mm256_mul_ps(D, _mm256_i32gather_ps(kLowbitKFrac, frac, 4)), pow2);
}

struct StripeArgs {
  uint32_t b0, nbs;  // first block, blocks
  const TokenPrep* prep;
  float* y[kTile];   // output row of each token
  const int8_t* aq[kTile];  // activations at the stripe's first block
  bool first;        // the row's first stripe: store, else add
};

template <int Bits, bool Ternary, int NT>
void rows(const WeightView& w, const LowbitKLayout& L, const StripeArgs& sa, uint32_t r0, uint32_t r1) {
  constexpr uint32_t BB = Bits * 2;  // bytes per 16-block
  const uint32_t ng = L.groups_per_row, bpg = L.group / kLowbitKBlock;  // 1..16 blocks per group
  const __m256 D = _mm256_set1_ps(L.scale);
  const __m256 unit = _mm256_set1_ps(float(1u << Bits) / 256.0f);  // 2^(bits-8), exact
  // A step of 8 blocks starts at block `at` of group g0: lane k of the 8
  // scales computed from g0 on -> the scale of block k's group.
  __m256i expand[16];
  uint32_t next_at[16], next_g[16];
  for (uint32_t at = 0; at < bpg; ++at) {
    alignas(32) int32_t lane[8];
    for (uint32_t k = 0; k < 8; ++k) lane[k] = int32_t((at + k) / bpg);
    expand[at] = _mm256_load_si256(reinterpret_cast<const __m256i*>(lane));
    next_at[at] = (at + 8) % bpg;
    next_g[at] = (at + 8) / bpg;
  }
  const TokenPrep* P = sa.prep;
  const uint32_t steps = (sa.nbs + 7) / 8;
  for (uint32_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.data + uint64_t(r) * L.row_code_bytes + uint64_t(sa.b0) * BB;
    const uint8_t* ep = w.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes;
    const uint8_t* zp = ep + ng;
    // Even and odd pairs add into separate sums (one FMA chain would cap a
    // pair at the FMA latency).
    __m256 acc[NT], acc2[NT];
    for (int t = 0; t < NT; ++t) acc[t] = acc2[t] = _mm256_setzero_ps();
    uint32_t g0 = sa.b0 / bpg, at = sa.b0 % bpg;
    for (uint32_t k = 0; k < steps; ++k, g0 += next_g[at], at = next_at[at]) {
      const uint32_t b = k * 8, nblk = sa.nbs - b < 8 ? sa.nbs - b : 8;
      // Groups past the row read as e = z = 0 (their blocks' codes and activations are 0).
      const __m256 d8 = _mm256_permutevar8x32_ps(group_scales(load_u8x8(ep + g0, ng - g0), D, L.shift), expand[at]);
      const __m256 zu8 =
          Ternary ? _mm256_set1_ps(1.0f)
                  : _mm256_permutevar8x32_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(load_u8x8(zp + g0, ng - g0)), unit), expand[at]);
      __m256 dx[NT];
      for (int t = 0; t < NT; ++t) dx[t] = _mm256_mul_ps(d8, _mm256_load_ps(P[t].xs + b));
      const uint8_t* ck = codes + uint64_t(b) * BB;
      alignas(32) uint8_t tmp[8 * BB];
      if (nblk < 8) {  // the stripe's last < 8 blocks: codes past them are never read, they decode as 0
        std::memset(tmp, 0, sizeof tmp);
        std::memcpy(tmp, ck, nblk * BB);
        ck = tmp;
      }
      for (uint32_t p = 0; 2 * p < nblk; ++p) {
        const __m256i q = decode<Bits>(ck + p * 2 * BB);
        const __m256i sel = _mm256_setr_epi32(2 * p, 2 * p, 2 * p, 2 * p, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1);
        const __m256 zu = _mm256_permutevar8x32_ps(zu8, sel);
        const uint32_t pair = b / 2 + p;
        for (int t = 0; t < NT; ++t) {
          const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sa.aq[t] + pair * 32));
          // Exact: sum q*a - z * 2^(bits-8) * sum a.
          const __m256 v = _mm256_fnmadd_ps(zu, _mm256_load_ps(P[t].asum + 8 * pair), _mm256_cvtepi32_ps(STK_LBK_DOT(q, av)));
          __m256* a = p % 2 ? acc2 : acc;
          a[t] = _mm256_fmadd_ps(v, _mm256_permutevar8x32_ps(dx[t], sel), a[t]);
        }
      }
    }
    for (int t = 0; t < NT; ++t) {
      const float part = hsum(_mm256_add_ps(acc[t], acc2[t]));
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

}  // namespace STK_LBK_NS
}  // namespace stk
