// AVX-512 VNNI low-bit kernels. Compiled with -mavx512f -mavx512bw -mavx512vl
// -mavx512vnni; kernel_tables.cpp files them only when the CPU reports
// avx512vnni.
//
// Q4, Q2, T2 (below): 64 code bytes at a time (a chunk: 4 Q4 blocks or 8 Q2
// blocks) are unpacked in place with a shift and a mask per code plane (Q4:
// low and high nibbles, Q2: the four bit pairs) and multiplied with vpdpbusd
// into one vector of 16 int32 lanes, 4 (Q4) or 2 (Q2) lanes per block. The
// activations are put in that order once per call: Q4 takes 16-byte pieces
// of each block, Q2 8-byte pieces. Per 16 blocks the group scales are one
// fp16 vector (any group size: a per-call map says which scale each block
// takes); d * xs per block is spread to the lanes with vpermps, and the
// offset term m * xs * sum(a) (T2: -d * ...) uses per-block activation sums
// made with the reordering. Even and odd chunks add into separate sums (one
// FMA chain would cap a chunk at the FMA latency). Rows are streamed front
// to back with only full loads in the main loop (masked loads that miss the
// cache are slow on AMD); a row's last < 16 blocks use masked loads. Up to
// four tokens share each decoded chunk; columns go in stripes of
// kStripeBlocks so the per-call buffers have a fixed size.
//
// Q3 (12-byte blocks) keeps the 256-bit kernel of lowbit_x86.inl with
// vpdpbusd.
//
// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*();
// inlined here that trips -Wuninitialized (CMake already turns off the
// maybe- variant for this file).
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstring>

static inline __m256i stk_lb_dot_vnni(__m256i u8, __m256i s8) {
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u8, s8);
}
#define STK_LB_DOT(u, s) stk_lb_dot_vnni(u, s)
#define STK_LB_NS lowbit_vnni
#define STK_LB_Q3_ONLY
#include "runtime/kernels/lowbit_x86.inl"
#include "runtime/kernels/prefetch_x86.h"

namespace stk {
namespace lowbit_vnni {
namespace {

constexpr uint32_t kStripeBlocks = 256;  // 8192 columns: a multiple of 16 blocks and of every group
constexpr int kTile = 4;                 // tokens per pass over a row

template <int Bits>
struct Geometry {
  static constexpr uint32_t kBlocks = Bits == 4 ? 4 : 8;  // blocks per 64 code bytes
  static constexpr uint32_t kPlanes = Bits == 4 ? 2 : 4;  // code planes (activation vectors) per chunk
  static constexpr uint32_t kChunks = 16 / kBlocks;       // chunks per 16 blocks
};

inline __mmask64 mask64(uint64_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }
inline __mmask16 mask16(uint32_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

inline __m512i load_avail(const void* p, uint64_t avail) {
  if (avail >= 64) return _mm512_loadu_si512(p);
  return avail == 0 ? _mm512_setzero_si512() : _mm512_maskz_loadu_epi8(mask64(avail), p);
}

// One token's activations over one stripe, reordered to match the unpacked
// code planes, and per block xs * (sum of its activations); zero past the
// stripe's last block up to a multiple of 16 blocks.
struct TokenPrep {
  alignas(64) int8_t a[kStripeBlocks * 32];
  alignas(64) float bsum[kStripeBlocks];
};

template <int Bits>
void prepare(const int8_t* aq, const float* xs, uint32_t nbs, TokenPrep* P) {
  constexpr uint32_t CB = Geometry<Bits>::kBlocks;
  const uint32_t padded = (nbs + 15) / 16 * 16;
  const uint64_t valid = uint64_t(nbs) * 32;  // the forward pass zeroes a short last group
  const __m512i ones = _mm512_set1_epi8(1);
  alignas(64) int32_t sums[kStripeBlocks];
  for (uint32_t c = 0; c * CB < padded; ++c) {
    const uint64_t at = uint64_t(c) * CB * 32;
    __m512i lanes = _mm512_setzero_si512();
    if (Bits == 4) {  // plane h, byte i <- block i/16, activation 16h + i%16
      const __m512i a0 = load_avail(aq + at, at < valid ? valid - at : 0);
      const __m512i a1 = load_avail(aq + at + 64, at + 64 < valid ? valid - at - 64 : 0);
      const __m512i lo = _mm512_shuffle_i64x2(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
      const __m512i hi = _mm512_shuffle_i64x2(a0, a1, _MM_SHUFFLE(3, 1, 3, 1));
      _mm512_store_si512(P->a + at, lo);
      _mm512_store_si512(P->a + at + 64, hi);
      lanes = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(lanes, ones, lo), ones, hi);
    } else {  // plane s, qword b <- qword 4b + s of the chunk: block b, activations 8s .. 8s+7
      __m512i v[4];
      for (int k = 0; k < 4; ++k) {
        const uint64_t o = at + 64 * uint64_t(k);
        v[k] = load_avail(aq + o, o < valid ? valid - o : 0);
      }
      for (int s = 0; s < 4; ++s) {
        const __m512i lo_idx = _mm512_setr_epi64(s, 4 + s, 8 + s, 12 + s, 0, 0, 0, 0);
        const __m512i hi_idx = _mm512_setr_epi64(0, 0, 0, 0, s, 4 + s, 8 + s, 12 + s);
        const __m512i plane = _mm512_mask_blend_epi64(0xF0, _mm512_permutex2var_epi64(v[0], lo_idx, v[1]),
                                                      _mm512_permutex2var_epi64(v[2], hi_idx, v[3]));
        _mm512_store_si512(P->a + at + 64 * s, plane);
        lanes = _mm512_dpbusd_epi32(lanes, ones, plane);
      }
    }
    // Block sums: Q4 has 4 lanes per block, Q2 2; block k of the chunk ends in lane k * 16 / CB.
    __m512i r = _mm512_add_epi32(lanes, _mm512_shuffle_epi32(lanes, _MM_PERM_CDAB));
    if (Bits == 4) r = _mm512_add_epi32(r, _mm512_shuffle_epi32(r, _MM_PERM_BADC));
    const __m512i pick = Bits == 4 ? _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
                                   : _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i bs = _mm512_permutexvar_epi32(pick, r);
    if (Bits == 4) {
      _mm_store_si128(reinterpret_cast<__m128i*>(sums + c * CB), _mm512_castsi512_si128(bs));
    } else {
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums + c * CB), _mm512_castsi512_si256(bs));
    }
  }
  for (uint32_t b = 0; b < padded; b += 16) {
    const __mmask16 m = mask16(nbs - b < 16 ? nbs - b : 16);
    const __m512 f = _mm512_cvtepi32_ps(_mm512_load_si512(sums + b));
    _mm512_store_ps(P->bsum + b, _mm512_maskz_mul_ps(m, f, _mm512_maskz_loadu_ps(m, xs + b)));
  }
}

// Which group scale each block of a 16-block step uses. The step loads the
// 16 fp16 scales from group base[k] of the row (never past the row's last
// group: the base moves back instead) and lane i of idx[k] picks block i's.
// Any group size works, powers of two or not (32 * 3 = 96 is valid).
struct GroupMap {
  alignas(64) int32_t idx[kStripeBlocks / 16][16];
  uint32_t base[kStripeBlocks / 16];
  bool full;  // at least 16 groups per row: full 16-half loads, else masked
};

// Vector code (a division per lane would cost as much as a few rows): a shift
// for power-of-two groups, else float division (block indices are < 2^18, so
// the truncated quotient is exact).
void map_groups(uint32_t b0, uint32_t nbs, uint32_t bpg, uint32_t nb, uint32_t ng, GroupMap* M) {
  M->full = ng >= 16;
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 div = _mm512_set1_ps(float(bpg));
  const bool pow2 = (bpg & (bpg - 1)) == 0;
  const __m128i shift = _mm_cvtsi32_si128(int(__builtin_ctz(bpg)));
  for (uint32_t k = 0; k * 16 < nbs; ++k) {
    const uint32_t first = (b0 + 16 * k) / bpg;
    const uint32_t base = !M->full ? 0 : first < ng - 16 ? first : ng - 16;
    M->base[k] = base;
    // Lanes past the row's last block take its group (any real group would do).
    const __m512i b = _mm512_min_epu32(_mm512_add_epi32(iota, _mm512_set1_epi32(int32_t(b0 + 16 * k))),
                                       _mm512_set1_epi32(int32_t(nb - 1)));
    const __m512i g = pow2 ? _mm512_srl_epi32(b, shift) : _mm512_cvttps_epi32(_mm512_div_ps(_mm512_cvtepi32_ps(b), div));
    _mm512_store_si512(M->idx[k], _mm512_sub_epi32(g, _mm512_set1_epi32(int32_t(base))));
  }
}

// A row's last, partial pieces: a full load, then the bytes past `avail`
// cleared with an AND, where the whole load lies inside the tensor (the next
// row's bytes follow); a masked load only at the tensor's very end. A masked
// load that misses the cache is slow on AMD cores, and rows shorter than 16
// blocks (dim 288, say) take this path on every row: on the stories15M shape
// the AVX-512 Q4 decode spent a third of its time on that one load. (An AND,
// not maskz_mov: GCC folds maskz_mov of a load back into a masked load.)
inline __m512i load_tail(const uint8_t* p, uint64_t avail, const uint8_t* end) {
  const __mmask64 m = mask64(avail);
  if (uint64_t(end - p) < 64) return _mm512_maskz_loadu_epi8(m, p);
  return _mm512_and_si512(_mm512_loadu_si512(p), _mm512_movm_epi8(m));
}

// Scales of groups base .. base+15 (fewer, zeros after, when the row has < 16).
inline __m512 load_scales(const uint16_t* p, bool full, uint32_t avail, const uint8_t* end) {
  if (full) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  const __mmask16 m = mask16(avail);
  const uint8_t* b = reinterpret_cast<const uint8_t*>(p);
  if (uint64_t(end - b) < 32) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  return _mm512_cvtph_ps(_mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), _mm256_movm_epi16(m)));
}

template <int Bits>
inline __m512i plane(__m512i v, int s) {
  const __m512i mask = _mm512_set1_epi8(Bits == 4 ? 0x0F : 0x03);
  return s == 0 ? _mm512_and_si512(v, mask) : _mm512_and_si512(_mm512_srli_epi16(v, Bits * s), mask);
}

struct StripeArgs {
  uint32_t b0, nbs;         // first block, blocks
  const GroupMap* groups;
  const TokenPrep* prep;
  const float* xs[kTile];   // activation scales at the stripe's first block
  float* y[kTile];          // output row of each token
  bool first;               // the row's first stripe: store, else add
};

// One chunk (64 code bytes) for NT tokens: the code planes times the reordered
// activations, scaled per lane. `dx` holds d * xs per block of the 16.
template <int Bits, int NT>
inline void chunk(__m512i v, uint32_t c, uint32_t j, const TokenPrep* P, const __m512* dx, __m512* acc) {
  constexpr uint32_t CB = Geometry<Bits>::kBlocks, PL = Geometry<Bits>::kPlanes;
  // Lane l of chunk j holds block j * CB + l * CB / 16 of the 16.
  const __m512i lane_block = _mm512_add_epi32(
      _mm512_set1_epi32(int(j * CB)),
      Bits == 4 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                : _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7));
  __m512i p[PL];
  for (uint32_t s = 0; s < PL; ++s) p[s] = plane<Bits>(v, int(s));
  for (int t = 0; t < NT; ++t) {
    const int8_t* ap = P[t].a + uint64_t(c) * 64 * PL;
    __m512i sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), p[0], _mm512_load_si512(ap));
    for (uint32_t s = 1; s < PL; ++s) sum = _mm512_dpbusd_epi32(sum, p[s], _mm512_load_si512(ap + 64 * s));
    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_permutexvar_ps(lane_block, dx[t]), acc[t]);
  }
}

// kStreamAhead, the decode prefetch distance, is in prefetch_x86.h.

template <int Bits, bool Ternary, int NT>
void rows(const WeightView& w, const LowbitLayout& L, const StripeArgs& sa, uint32_t r0, uint32_t r1) {
  constexpr uint32_t CB = Geometry<Bits>::kBlocks, CPS = Geometry<Bits>::kChunks;
  const uint32_t ng = L.groups_per_row;
  const uint32_t full = sa.nbs / 16, rest = sa.nbs % 16;
  const GroupMap& G = *sa.groups;
  const TokenPrep* P = sa.prep;
  const uint8_t* end = w.data + w.bytes;
  for (uint32_t r = r0; r < r1; ++r) {
    if (sa.b0 == 0 && r + kSideRowsAhead < w.rows) {  // a row's scales, once (prefetch_x86.h)
      prefetch_span(w.data + L.scales_offset + uint64_t(r + kSideRowsAhead) * L.row_scale_bytes, L.row_scale_bytes);
    }
    const uint8_t* codes = w.data + uint64_t(r) * L.row_code_bytes + uint64_t(sa.b0) * L.block_bytes;
    const uint16_t* dp = reinterpret_cast<const uint16_t*>(w.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes);
    const uint16_t* mp = dp + ng;
    // Even and odd chunks add into separate sums: one FMA chain would cap a
    // chunk at the FMA latency.
    __m512 acc[NT], acc2[NT], macc[NT], dx[NT];
    for (int t = 0; t < NT; ++t) acc[t] = acc2[t] = macc[t] = _mm512_setzero_ps();
    for (uint32_t k = 0; k < full; ++k) {
      const __m512i gi = _mm512_load_si512(G.idx[k]);
      const uint32_t base = G.base[k];
      const __m512 d = _mm512_permutexvar_ps(gi, load_scales(dp + base, G.full, ng - base, end));
      const __m512 m = Ternary ? d : _mm512_permutexvar_ps(gi, load_scales(mp + base, G.full, ng - base, end));
      for (int t = 0; t < NT; ++t) {
        const __m512 bs = _mm512_load_ps(P[t].bsum + k * 16);
        macc[t] = Ternary ? _mm512_fnmadd_ps(m, bs, macc[t]) : _mm512_fmadd_ps(m, bs, macc[t]);
        dx[t] = _mm512_mul_ps(d, _mm512_loadu_ps(sa.xs[t] + k * 16));
      }
      const uint8_t* ck = codes + uint64_t(k) * 16 * L.block_bytes;
      if (NT == 1) {  // decode: memory-bound; keep more misses in flight than the hardware prefetcher does
        for (uint32_t j = 0; j < CPS; ++j) _mm_prefetch(reinterpret_cast<const char*>(ck + kStreamAhead + 64 * j), _MM_HINT_T0);
      }
      // Even chunks into acc, odd into acc2, each named outright: choosing
      // the array by j % 2 made GCC keep both in memory, and every chunk's
      // FMA then waited on a store and reload of its sum (naming them made
      // the Q4 kernel 1.25-1.42x faster from L2, same results).
      for (uint32_t j = 0; j < CPS; j += 2) {
        chunk<Bits, NT>(_mm512_loadu_si512(ck + 64 * j), k * CPS + j, j, P, dx, acc);
        chunk<Bits, NT>(_mm512_loadu_si512(ck + 64 * (j + 1)), k * CPS + j + 1, j + 1, P, dx, acc2);
      }
    }
    if (rest > 0) {  // the stripe's last < 16 blocks: zeros past the end (load_tail)
      const uint32_t k = full;
      const __m512i gi = _mm512_load_si512(G.idx[k]);
      const uint32_t base = G.base[k];
      const __m512 d = _mm512_permutexvar_ps(gi, load_scales(dp + base, G.full, ng - base, end));
      const __m512 m = Ternary ? d : _mm512_permutexvar_ps(gi, load_scales(mp + base, G.full, ng - base, end));
      for (int t = 0; t < NT; ++t) {
        const __m512 bs = _mm512_load_ps(P[t].bsum + k * 16);
        macc[t] = Ternary ? _mm512_fnmadd_ps(m, bs, macc[t]) : _mm512_fmadd_ps(m, bs, macc[t]);
        dx[t] = _mm512_mul_ps(d, _mm512_maskz_loadu_ps(mask16(rest), sa.xs[t] + k * 16));
      }
      const uint8_t* ck = codes + uint64_t(k) * 16 * L.block_bytes;
      const uint64_t bytes = uint64_t(rest) * L.block_bytes;
      for (uint32_t j = 0; j * CB < rest; j += 2) {
        chunk<Bits, NT>(load_tail(ck + 64 * j, bytes - 64 * j, end), k * CPS + j, j, P, dx, acc);
        if ((j + 1) * CB < rest) {
          chunk<Bits, NT>(load_tail(ck + 64 * (j + 1), bytes - 64 * (j + 1), end), k * CPS + j + 1, j + 1, P, dx, acc2);
        }
      }
    }
    for (int t = 0; t < NT; ++t) {
      const float part = _mm512_reduce_add_ps(_mm512_add_ps(acc[t], acc2[t])) + _mm512_reduce_add_ps(macc[t]);
      sa.y[t][r] = sa.first ? part : sa.y[t][r] + part;
    }
  }
}

template <int Bits, bool Ternary>
void run(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  LowbitLayout L;
  if (!lowbit_layout(w.format, w.rows, w.cols, w.params, &L)) return;
  const uint32_t nb = L.blocks_per_row;
  TokenPrep prep[kTile];
  GroupMap groups;
  StripeArgs sa;
  sa.groups = &groups;
  sa.prep = prep;
  // Tiles of four tokens, the last < 4 one by one (fewer instantiations; each
  // token's sums are the same either way).
  for (uint32_t t0 = 0, nt; t0 < a.n; t0 += nt) {
    nt = a.n - t0 >= uint32_t(kTile) ? uint32_t(kTile) : 1;
    for (uint32_t b0 = 0; b0 < nb; b0 += kStripeBlocks) {
      sa.b0 = b0;
      sa.nbs = nb - b0 < kStripeBlocks ? nb - b0 : kStripeBlocks;
      sa.first = b0 == 0;
      map_groups(b0, sa.nbs, L.group / kLowbitBlock, nb, L.groups_per_row, &groups);
      for (uint32_t i = 0; i < nt; ++i) {
        const uint32_t t = t0 + i;
        sa.xs[i] = a.q8_scales + size_t(t) * nb + b0;
        sa.y[i] = y + size_t(t) * ldy;
        prepare<Bits>(a.q8 + size_t(t) * a.ldq + size_t(b0) * 32, sa.xs[i], sa.nbs, &prep[i]);
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

// Rows of fewer than 16 blocks (under 512 columns) never reach the 16-block
// main loop above: per row they pay its setup and two 16-lane reductions for
// a few chunks, and the AVX2 kernel, which the same activations suit, is
// faster there (stk bench --shapes stories15M --isa avx512,avx2, whose
// 32000 x 288 classifier is most of the bytes: Q4 1148 against 1689 tok/s,
// Q2 1336 against 1897, one thread). A tensor takes one kernel for all its
// rows, so results still do not depend on the thread split.
inline bool short_rows(const WeightView& w) { return (w.cols + kLowbitBlock - 1) / kLowbitBlock < 16; }

void matmul_q4(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  if (short_rows(w)) return lowbit_avx2::matmul_q4(w, a, y, ldy, r0, r1);
  run<4, false>(w, a, y, ldy, r0, r1);
}
void matmul_q2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  if (short_rows(w)) return lowbit_avx2::matmul_q2(w, a, y, ldy, r0, r1);
  run<2, false>(w, a, y, ldy, r0, r1);
}
void matmul_t2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  if (short_rows(w)) return lowbit_avx2::matmul_t2(w, a, y, ldy, r0, r1);
  run<2, true>(w, a, y, ldy, r0, r1);
}

}  // namespace lowbit_vnni
}  // namespace stk
