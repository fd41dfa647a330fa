// AVX-512 VNNI kernels for Q4K, Q3K, Q2K, T2K (runtime/lowbit.h). Compiled
// with -mavx512f -mavx512bw -mavx512vl -mavx512vnni; kernel_tables.cpp files
// them only when the CPU reports avx512vnni.
//
// Codes are unpacked in place, one shift and one mask per code plane, and
// multiplied by vpdpbusd; the activations are put in the matching order once
// per call, so a row needs no shuffle of its codes:
//   Q2K/T2K: 64 code bytes = 16 blocks; plane s (bits 2s..2s+1 of every
//            byte) holds codes 4s..4s+3 of block l in int32 lane l, so the
//            four planes sum into one vector with one lane per block.
//   Q3K:     96 bytes = 16 blocks; two vpermi2w pick the blocks' low-bit
//            dwords (then as Q2K) and their high-bit words; each plane's
//            high bits become a byte mask (vpshufb + vptestmb) that adds 4.
//   Q4K:     64 bytes = 8 blocks; low nibbles (codes 0-7) and high nibbles
//            (8-15) are two planes, two lanes per block.
// Per 16 blocks the group scales are computed from the u8 codes with the
// float operations of lowbitk_scale (2^(-k/64) from two vpermi2ps over the
// 64-entry table), spread to blocks with vpermps (any group size: a per-call
// map says which group each block takes). The scalar kernel's block term
//   xs * (d * 2^(b-8)) * (2^(8-b) * sum q*a - z * sum a)
// is computed per lane as (d * xs) * (sum q*a - z * 2^(b-8) * sum a) (T2K:
// z * 2^(b-8) = 1); the second factor is a multiple of 2^(b-8) below 2^16,
// so one FNMADD gives it exactly from the integer sums and the lane's
// activation sum (made once per call). Q2K/Q3K/T2K lanes are whole blocks,
// so each block's value is the scalar kernel's; only the accumulation order
// differs. Rows stream front to
// back with full loads only; a stripe's last < 16 blocks use masked loads
// (never past the tensor). Up to four tokens share each unpacked vector;
// columns go in stripes of 8192 so the per-call buffers have a fixed size.
// Every token sums its blocks in the same order whatever the batch or rows.
//
// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*();
// inlined here that trips -Wuninitialized (CMake already turns off the
// maybe- variant for this file).
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstring>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/prefetch_x86.h"
#include "runtime/lowbit.h"

namespace stk {
namespace lowbitk_vnni {
namespace {

constexpr uint32_t kStripe = 512;  // blocks (8192 columns), a multiple of 16
constexpr int kTile = 4;           // tokens per pass over a row

inline __mmask64 mask64(uint64_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }
inline __mmask16 mask16(uint32_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

inline __m512i load_avail(const void* p, uint64_t avail) {
  if (avail >= 64) return _mm512_loadu_si512(p);
  return avail == 0 ? _mm512_setzero_si512() : _mm512_maskz_loadu_epi8(mask64(avail), p);
}

// One token's activations over one stripe, reordered to match the code
// planes, per block xs, and per int32 lane of the products the sum of the
// lane's activations (Q4K: 2 lanes per block, else 1); zero past the
// stripe's last block up to a multiple of 16 blocks.
struct TokenPrep {
  alignas(64) int8_t a[kStripe * 16];
  alignas(64) float xs[kStripe];
  alignas(64) float asum[kStripe * 2];
};

template <int Bits>
void prepare(const int8_t* aq, const float* xs, uint32_t nbs, TokenPrep* P) {
  const uint32_t padded = (nbs + 15) / 16 * 16;
  const uint64_t valid = uint64_t(nbs + 1) / 2 * 32;  // whole activation groups; the forward pass zeroes their padding
  const __m512i ones = _mm512_set1_epi8(1);
  for (uint32_t b = 0; b < padded; b += 16) {  // 16 blocks = 256 activations = 4 vectors
    const uint64_t at = uint64_t(b) * 16;
    __m512i v[4];
    for (int k = 0; k < 4; ++k) {
      const uint64_t o = at + 64 * uint64_t(k);
      v[k] = load_avail(aq + o, o < valid ? valid - o : 0);
    }
    if (Bits == 4) {  // per 8 blocks: plane 0 = even qwords (codes 0-7 of each block), plane 1 = odd
      const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
      for (int h = 0; h < 2; ++h) {
        const __m512i p0 = _mm512_permutex2var_epi64(v[2 * h], even, v[2 * h + 1]);
        const __m512i p1 = _mm512_permutex2var_epi64(v[2 * h], odd, v[2 * h + 1]);
        _mm512_store_si512(P->a + at + 128 * h, p0);
        _mm512_store_si512(P->a + at + 128 * h + 64, p1);
        const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, p0), ones, p1);
        _mm512_store_ps(P->asum + 2 * b + 16 * h, _mm512_cvtepi32_ps(s));
      }
    } else {  // plane s, dword l <- block l's activations 4s..4s+3 (dword 4l + s of the 16 blocks)
      __m512i s = _mm512_setzero_si512();
      for (int k = 0; k < 4; ++k) {
        const __m512i idx = _mm512_setr_epi32(k, 4 + k, 8 + k, 12 + k, 16 + k, 20 + k, 24 + k, 28 + k, 0, 0, 0, 0, 0, 0, 0, 0);
        const __m512i lo = _mm512_permutex2var_epi32(v[0], idx, v[1]), hi = _mm512_permutex2var_epi32(v[2], idx, v[3]);
        const __m512i pl = _mm512_inserti64x4(lo, _mm512_castsi512_si256(hi), 1);
        _mm512_store_si512(P->a + at + 64 * k, pl);
        s = _mm512_dpbusd_epi32(s, ones, pl);
      }
      _mm512_store_ps(P->asum + b, _mm512_cvtepi32_ps(s));
    }
    // xs of block b is xs[b / 2]: 8 groups' scales, each twice.
    const __mmask16 m = mask16(nbs - b < 16 ? nbs - b : 16);
    const __m512 x8 = _mm512_castps256_ps512(_mm256_maskz_loadu_ps(__mmask8(mask16((nbs - b + 1) / 2)), xs + b / 2));
    const __m512 x = _mm512_maskz_permutexvar_ps(m, _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7), x8);
    _mm512_store_ps(P->xs + b, x);
  }
}

// Which group each block of a 16-block step uses. The step loads the 16
// scale codes from group base[k] of the row (never past the row's last
// group: the base moves back instead) and lane i of idx[k] picks block i's.
struct GroupMap {
  alignas(64) int32_t idx[kStripe / 16][16];
  uint32_t base[kStripe / 16];
  bool full;  // at least 16 groups per row: full 16-byte loads, else masked
};

// Block indices are < 2^22 and bpg <= 16, so the float quotient truncates exactly.
void map_groups(uint32_t b0, uint32_t nbs, uint32_t bpg, uint32_t nb, uint32_t ng, GroupMap* M) {
  M->full = ng >= 16;
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 div = _mm512_set1_ps(float(bpg));
  for (uint32_t k = 0; k * 16 < nbs; ++k) {
    const uint32_t first = (b0 + 16 * k) / bpg;
    const uint32_t base = !M->full ? 0 : first < ng - 16 ? first : ng - 16;
    M->base[k] = base;
    // Lanes past the row's last block take its group (their codes and activations are 0).
    const __m512i b = _mm512_min_epu32(_mm512_add_epi32(iota, _mm512_set1_epi32(int32_t(b0 + 16 * k))),
                                       _mm512_set1_epi32(int32_t(nb - 1)));
    const __m512i g = _mm512_cvttps_epi32(_mm512_div_ps(_mm512_cvtepi32_ps(b), div));
    _mm512_store_si512(M->idx[k], _mm512_sub_epi32(g, _mm512_set1_epi32(int32_t(base))));
  }
}

// The 16 scale codes (or zeros) from p, as int32.
inline __m512i load_codes(const uint8_t* p, bool full, uint32_t avail) {
  const __m128i v = full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)) : _mm_maskz_loadu_epi8(mask16(avail), p);
  return _mm512_cvtepu8_epi32(v);
}

struct Consts {
  __m512 frac[4];  // kLowbitKFrac, 16 per vector
  __m512 D, unit;
  __m128i shift, fshift;
  __m512i fmask;
};

// d = D * F[k] * 2^-whole for 16 scale codes: the float operations of lowbitk_scale.
inline __m512 group_scales(__m512i e, const Consts& C) {
  const __m512i whole = _mm512_srl_epi32(e, C.shift);
  const __m512i k = _mm512_sll_epi32(_mm512_and_si512(e, C.fmask), C.fshift);  // 0..63
  const __m512 lo = _mm512_permutex2var_ps(C.frac[0], k, C.frac[1]), hi = _mm512_permutex2var_ps(C.frac[2], k, C.frac[3]);
  const __m512 f = _mm512_mask_blend_ps(_mm512_test_epi32_mask(k, _mm512_set1_epi32(32)), lo, hi);
  const __m512 pow2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_sub_epi32(_mm512_set1_epi32(127), whole), 23));
  return _mm512_mul_ps(_mm512_mul_ps(C.D, f), pow2);
}

template <int Bits>
inline __m512i plane(__m512i v, int s) {
  const __m512i mask = _mm512_set1_epi8(Bits == 4 ? 0x0F : 0x03);
  const int sh = Bits == 4 ? 4 * s : 2 * s;
  return s == 0 ? _mm512_and_si512(v, mask) : _mm512_and_si512(_mm512_srli_epi16(v, sh), mask);
}

// Word w of a 96-byte Q3K run, when v0 holds bytes 0-63 and v1 bytes 32-95.
constexpr int q3w(int w) { return w < 32 ? w : w + 16; }

// The four code planes of 16 Q3K blocks (96 bytes: v0 = bytes 0-63, v1 = 32-95).
inline void q3k_planes(__m512i v0, __m512i v1, __m512i* p) {
  alignas(64) int16_t lo_idx[32], hi_idx[32];
  for (int b = 0; b < 16; ++b) {  // constant-folded
    lo_idx[2 * b] = int16_t(q3w(3 * b)), lo_idx[2 * b + 1] = int16_t(q3w(3 * b + 1));
    hi_idx[2 * b] = hi_idx[2 * b + 1] = int16_t(q3w(3 * b + 2));
  }
  const __m512i lo = _mm512_permutex2var_epi16(v0, _mm512_load_si512(lo_idx), v1);
  const __m512i hw = _mm512_permutex2var_epi16(v0, _mm512_load_si512(hi_idx), v1);
  // Code 4s+i of block l: bit 4s+i of its high word (dword l of hw holds it
  // twice) = byte s/2, bit 4(s%2)+i; h[s/2] copies that byte to all 4 bytes of lane l.
  const __m512i sel0 = _mm512_set4_epi32(0x0C0C0C0C, 0x08080808, 0x04040404, 0x00000000);
  const __m512i sel1 = _mm512_set4_epi32(0x0D0D0D0D, 0x09090909, 0x05050505, 0x01010101);
  const __m512i h[2] = {_mm512_shuffle_epi8(hw, sel0), _mm512_shuffle_epi8(hw, sel1)};
  const __m512i pat[2] = {_mm512_set1_epi32(0x08040201), _mm512_set1_epi32(int(0x80402010u))};
  const __m512i four = _mm512_set1_epi8(4);
  for (int s = 0; s < 4; ++s) {
    const __m512i l = plane<2>(lo, s);
    p[s] = _mm512_mask_add_epi8(l, _mm512_test_epi8_mask(h[s / 2], pat[s % 2]), l, four);
  }
}

struct StripeArgs {
  uint32_t b0, nbs;  // first block, blocks
  const GroupMap* groups;
  const TokenPrep* prep;
  float* y[kTile];   // output row of each token
  bool first;        // the row's first stripe: store, else add
};

// 16 blocks (k-th step of the stripe) for NT tokens; `rest` < 16 for a
// stripe's ragged end (masked loads, zeros past it). zu = z * 2^(bits-8) per
// block, dx = d * xs per block and token.
template <int Bits, int NT>
inline void step(const uint8_t* ck, uint32_t k, uint32_t rest, __m512 zu, const __m512* dx, const TokenPrep* P,
                 __m512* acc, __m512* acc2) {
  constexpr uint32_t BB = Bits * 2;  // bytes per block
  const uint64_t bytes = uint64_t(rest) * BB;
  if (Bits == 4) {
    for (uint32_t j = 0; j < 2; ++j) {  // two chunks of 8 blocks; lane l of chunk j is block 8j + l/2
      if (rest < 16 && 8 * j >= rest) break;
      const __m512i v = rest < 16 ? _mm512_maskz_loadu_epi8(mask64(bytes - 64 * j), ck + 64 * j)
                                  : _mm512_loadu_si512(ck + 64 * j);
      const __m512i p0 = plane<4>(v, 0), p1 = plane<4>(v, 1);
      const __m512i lane_block = _mm512_add_epi32(_mm512_set1_epi32(int(8 * j)),
                                                  _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7));
      const __m512 zl = _mm512_permutexvar_ps(lane_block, zu);
      for (int t = 0; t < NT; ++t) {
        const int8_t* ap = P[t].a + uint64_t(k) * 256 + 128 * j;
        __m512i sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), p0, _mm512_load_si512(ap));
        sum = _mm512_dpbusd_epi32(sum, p1, _mm512_load_si512(ap + 64));
        const __m512 x = _mm512_fnmadd_ps(zl, _mm512_load_ps(P[t].asum + 32 * k + 16 * j), _mm512_cvtepi32_ps(sum));
        const __m512 dxl = _mm512_permutexvar_ps(lane_block, dx[t]);
        if (j) {  // not a pointer to either array: keeps both in registers
          acc2[t] = _mm512_fmadd_ps(x, dxl, acc2[t]);
        } else {
          acc[t] = _mm512_fmadd_ps(x, dxl, acc[t]);
        }
      }
    }
    return;
  }
  __m512i p[4];
  if (Bits == 3) {
    const __m512i v0 = rest < 16 ? _mm512_maskz_loadu_epi8(mask64(bytes), ck) : _mm512_loadu_si512(ck);
    const __m512i v1 = rest < 16 ? _mm512_maskz_loadu_epi8(mask64(bytes > 32 ? bytes - 32 : 0), ck + 32)
                                 : _mm512_loadu_si512(ck + 32);
    q3k_planes(v0, v1, p);
  } else {
    const __m512i v = rest < 16 ? _mm512_maskz_loadu_epi8(mask64(bytes), ck) : _mm512_loadu_si512(ck);
    for (int s = 0; s < 4; ++s) p[s] = plane<2>(v, s);
  }
  for (int t = 0; t < NT; ++t) {  // lane l = block l
    const int8_t* ap = P[t].a + uint64_t(k) * 256;
    __m512i sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), p[0], _mm512_load_si512(ap));
    for (int s = 1; s < 4; ++s) sum = _mm512_dpbusd_epi32(sum, p[s], _mm512_load_si512(ap + 64 * s));
    const __m512 x = _mm512_fnmadd_ps(zu, _mm512_load_ps(P[t].asum + 16 * k), _mm512_cvtepi32_ps(sum));
    if (k % 2) {
      acc2[t] = _mm512_fmadd_ps(x, dx[t], acc2[t]);
    } else {
      acc[t] = _mm512_fmadd_ps(x, dx[t], acc[t]);
    }
  }
}

template <int Bits, bool Ternary, int NT>
void rows(const WeightView& w, const LowbitKLayout& L, const Consts& C, const StripeArgs& sa, uint32_t r0,
          uint32_t r1) {
  constexpr uint32_t BB = Bits * 2;
  const uint32_t ng = L.groups_per_row;
  const uint32_t full = sa.nbs / 16, rest = sa.nbs % 16;
  const GroupMap& G = *sa.groups;
  const TokenPrep* P = sa.prep;
  for (uint32_t r = r0; r < r1; ++r) {
    if (sa.b0 == 0 && r + kSideRowsAhead < w.rows) {  // a row's scales, once (prefetch_x86.h)
      prefetch_span(w.data + L.scales_offset + uint64_t(r + kSideRowsAhead) * L.row_scale_bytes, L.row_scale_bytes);
    }
    const uint8_t* codes = w.data + uint64_t(r) * L.row_code_bytes + uint64_t(sa.b0) * BB;
    const uint8_t* ep = w.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes;
    const uint8_t* zp = ep + ng;
    // Two float sums per token (one FMA chain would cap a step at the FMA latency).
    __m512 acc[NT], acc2[NT], dx[NT];
    for (int t = 0; t < NT; ++t) acc[t] = acc2[t] = _mm512_setzero_ps();
    for (uint32_t k = 0; k < full + (rest > 0); ++k) {
      const __m512i gi = _mm512_load_si512(G.idx[k]);
      const uint32_t base = G.base[k];
      const __m512 dg = _mm512_permutexvar_ps(gi, group_scales(load_codes(ep + base, G.full, ng - base), C));
      const __m512 zu = Ternary ? _mm512_set1_ps(1.0f)
                                : _mm512_permutexvar_ps(
                                      gi, _mm512_mul_ps(_mm512_cvtepi32_ps(load_codes(zp + base, G.full, ng - base)), C.unit));
      for (int t = 0; t < NT; ++t) dx[t] = _mm512_mul_ps(dg, _mm512_load_ps(P[t].xs + k * 16));
      const uint8_t* ck = codes + uint64_t(k) * 16 * BB;
      if (NT == 1) {  // decode: memory-bound; keep more misses in flight than the hardware prefetcher does
        for (uint32_t o = 0; o < 16 * BB; o += 64) _mm_prefetch(reinterpret_cast<const char*>(ck + kStreamAhead + o), _MM_HINT_T0);
      }
      step<Bits, NT>(ck, k, k < full ? 16 : rest, zu, dx, P, acc, acc2);
    }
    for (int t = 0; t < NT; ++t) {
      const float part = _mm512_reduce_add_ps(_mm512_add_ps(acc[t], acc2[t]));
      sa.y[t][r] = sa.first ? part : sa.y[t][r] + part;
    }
  }
}

template <int Bits, bool Ternary>
void run(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  LowbitKLayout L;
  if (!lowbitk_layout(w.format, w.rows, w.cols, w.params, &L)) return;  // model_open validated it
  const uint32_t nb = L.blocks_per_row, act_groups = (w.cols + 31) / 32;
  Consts C;
  for (int i = 0; i < 4; ++i) C.frac[i] = _mm512_loadu_ps(kLowbitKFrac + 16 * i);
  C.D = _mm512_set1_ps(L.scale);
  C.unit = _mm512_set1_ps(float(1u << Bits) / 256.0f);  // 2^(bits-8), exact
  C.shift = _mm_cvtsi32_si128(int(L.shift));
  C.fshift = _mm_cvtsi32_si128(int(6 - L.shift));
  C.fmask = _mm512_set1_epi32((1 << L.shift) - 1);
  TokenPrep prep[kTile];
  GroupMap groups;
  StripeArgs sa;
  sa.groups = &groups;
  sa.prep = prep;
  // Tiles of four tokens, the rest one by one (each token's sums are the same either way).
  for (uint32_t t0 = 0, nt; t0 < a.n; t0 += nt) {
    nt = a.n - t0 >= uint32_t(kTile) ? uint32_t(kTile) : 1;
    for (uint32_t b0 = 0; b0 < nb; b0 += kStripe) {
      sa.b0 = b0;
      sa.nbs = nb - b0 < kStripe ? nb - b0 : kStripe;
      sa.first = b0 == 0;
      map_groups(b0, sa.nbs, L.group / kLowbitKBlock, nb, L.groups_per_row, &groups);
      for (uint32_t i = 0; i < nt; ++i) {
        const size_t t = t0 + i;
        sa.y[i] = y + t * ldy;
        prepare<Bits>(a.q8 + t * a.ldq + size_t(b0) * kLowbitKBlock, a.q8_scales + t * act_groups + b0 / 2, sa.nbs,
                      &prep[i]);
      }
      if (nt == 1) {
        rows<Bits, Ternary, 1>(w, L, C, sa, r0, r1);
      } else {
        rows<Bits, Ternary, kTile>(w, L, C, sa, r0, r1);
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

}  // namespace lowbitk_vnni
}  // namespace stk
