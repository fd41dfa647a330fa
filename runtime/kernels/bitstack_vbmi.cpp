// BitStack kernel, AVX-512 VBMI + VNNI: y = sum_blocks sum_k u_k ⊙ (S (v_k ⊙ s ⊙ x)),
// by table lookup on the packed sign bits and fp16 factors, never on a dense W.
//
// Why tables: the int8 kernel (bitstack_vnni.cpp) spends one vpdpbusd per
// rank on every 64 sign bits of a row, plus the expansion of those bits to
// bytes. Here each rank's z = v_k ⊙ s ⊙ x is first turned into tables of
// subset sums: for every 4 columns, the 16 sums of z over each subset of
// them. A row's sum of z over its + signs is then one table byte per 4
// columns, and one vpermb looks up 64 of them (16 rows x 16 columns) at
// once: per 256 weights and rank one vpermb and one vpdpbusd instead of four
// vpdpbusd, plus index work that the ranks share. On the 2-core AMD EPYC
// (Zen 5) development VM, with blocks in L2, it ran 1.3-1.9x faster than the
// vpdpbusd kernel at the stories110M shapes (ranks 3 and 4), tables included.
//
//  - Tables: a 16-column block has 4 groups of 4 columns. Per pair of blocks
//    (32 columns, one dword of sign bits per row) and rank k there are two
//    tables of 64 int8 entries: entry 16 q + p of the first is the sum of z_q
//    over the columns of group q' = 0, 2, 4, 6 (q = 0..3) of the pair that
//    the bits of p select, the second the same for groups 1, 3, 5, 7. Those
//    are the groups in the low and the high nibbles of the dword's bytes, so
//    the indices are the dword masked, and shifted by 4 and masked (on port
//    0), not picked apart with vpmultishiftqb (port 5, with the lookups and
//    the transposes): 0.165-0.168 against 0.172 ms in the harness below,
//    row-major. z is quantized per tile of kTile
//    columns with the step that maps the largest one-signed sum of a group
//    (sum of its positive z, or of its negative z) to kSumMax = 125, so every
//    subset sum of the rounded z_q fits int8. That spends the int8 range on
//    sums as they occur rather than on 4 x max|z| (about 3x finer on
//    Gaussian z): stories260K's held-out ppl with this kernel is within 0.3%
//    of the scalar kernels' at every budget measured (README).
//  - Signs: the lookup needs, in dword j of a vector, row j's 32 sign bits of
//    the block pair, for 16 rows at once. The block pool lays sign planes out
//    in 16-row groups for this kernel (runtime/bitstack_signs16.h), where
//    that vector is one 64-byte load. Planes in the file's row-major layout
//    (rows of ragged width, rows past the last full group, the packer's own
//    tensors) go through a 16 x 16 dword transpose of 16 rows' 64-byte
//    slices in registers instead: 64 shuffles per 16 rows x 512 columns, on
//    port 5 with the lookups. On a stories110M-sized stack (12 layers x 7
//    matrices x 4 blocks, 45 MB) the grouped layout took 3.27-3.36 ms per
//    token against 4.65-4.97 row-major, and 0.122-0.123 against 0.165-0.168
//    ms for one layer of 2 blocks (in L2); 2-core Intel Xeon VM, one thread,
//    a throwaway harness timing this function alone.
//  - Sums: vpdpbusd(ones, looked-up bytes) adds a row's 4 bytes into its
//    int32 lane; lanes are rows, so no horizontal sums are needed. Per tile
//    the int32 sums are scaled into float; a row's signed sum is
//    2 * (sum over + signs) - sum(z_q), and the last term is one constant per
//    rank and unit.
//  - Building the tables costs about as much as the lookups of 100-200 rows,
//    and each call builds them for its own rows, so forward.cpp gives each
//    thread one chunk of a BitStack product. Building them once per product
//    instead, in parallel, before the rows were shared out, measured no
//    faster on the stories110M shape (memory-bound at 2 threads: 180-186
//    against 168-182 tok/s) and slower on stories15M (an extra pool round per
//    product: 5500-6900 against 6300-7900 tok/s), so it is not done.
//
// Determinism: every row's arithmetic is in its own lane and the same
// whatever rows share its group, so results do not depend on how rows are
// split. Rows past r1 in a row-major group read nothing (zero signs), rows
// of a 16-row group outside [r0, r1) are computed and not stored. Units,
// slices, tiles and passes are cut from cols and rank alone.
// Stack: about 19 KB (one unit of tables 16.2 KB, transposed signs 2 KB).
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vbmi -mavx512vnni
// -mfma -mf16c; filed only when the CPU has them.
#include <immintrin.h>

#include "runtime/bitstack_format.h"
#include "runtime/block_pool.h"
#include "runtime/kernels/avx512_load16.h"
#include "runtime/kernels/kernels.h"
#include "runtime/kernels/prefetch_x86.h"

namespace stk {
namespace {

constexpr uint32_t kSpan = 1024;                     // columns per unit of tables (16 KB at kMaxK ranks)
constexpr uint32_t kSlice = 512;                     // columns transposed at once: 64 sign bytes of a row
constexpr uint32_t kBlock = 16;                      // columns per table
constexpr uint32_t kBlocksPerSlice = kSlice / kBlock;
constexpr uint32_t kTile = 128;                      // columns per int8 step of z
constexpr uint32_t kBlocksPerTile = kTile / kBlock;  // 8
constexpr uint32_t kMaxK = 4;                        // ranks per pass
constexpr uint32_t kRowsAhead = 64;                   // sign rows prefetched ahead
constexpr uint32_t kGroupsAhead = kRowsAhead / 16;    // the same in 16-row groups
constexpr float kSumMax = 125.0f;                    // the largest one-signed sum of 4 z_q

// A unit of tables: ranks kb..kb+K-1 of one block over one span of n <= kSpan
// columns, for one token. Layout (64-byte aligned, at most kMaxUnitBytes):
//   float step[ntiles][K]  z_q's step times the block's u_scale
//   float corr[K]          per rank: sum over the tiles of step * sum(z_q)
//   (zeros to 64 bytes)
//   int8 t[nblocks][K][64] per 16 columns and rank; for a pair of blocks
//                          2i, 2i + 1, slot 2i holds the table of the low
//                          nibbles' groups, slot 2i + 1 that of the high
//                          ones (an odd last block: a pair with zero z_q)
inline uint32_t unit_header_bytes(uint32_t K, uint32_t n) {
  const uint32_t ntiles = (n + kTile - 1) / kTile;
  return (4 * K * (ntiles + 1) + 63) / 64 * 64;
}
constexpr uint32_t kMaxUnitBytes = (4 * kMaxK * (kSpan / kTile + 1) + 63) / 64 * 64 + kSpan / kBlock * kMaxK * 64;

struct UnitView {
  const float* step;  // [tile * K + k]
  const float* corr;  // [k]
  const int8_t* t;    // [(block * K + k) * 64]
  UnitView(const uint8_t* u, uint32_t K, uint32_t n)
      : step(reinterpret_cast<const float*>(u)),
        corr(step + K * ((n + kTile - 1) / kTile)),
        t(reinterpret_cast<const int8_t*>(u + unit_header_bytes(K, n))) {}
};

// Constants of the table build: byte e of idx[h][b] = column 8 * (e / 16) +
// 4 h + b of the block pair (h = 0: the groups of the low nibbles), and bit e
// of mask[b] = bit b of e % 16.
struct BuildConsts {
  __m512i idx[2][4];
  __mmask64 mask[4];
  BuildConsts() {
    alignas(64) int8_t ib[64];
    for (int h = 0; h < 2; ++h)
      for (int b = 0; b < 4; ++b) {
        uint64_t m = 0;
        for (int e = 0; e < 64; ++e) {
          ib[e] = int8_t(8 * (e / 16) + 4 * h + b);
          if (((e % 16) >> b) & 1) m |= uint64_t(1) << e;
        }
        idx[h][b] = _mm512_load_si512(ib);
        mask[b] = m;
      }
  }
};

// The unit of ranks kb..kb+K-1 over columns [c0, c0 + n) at `out`; z_q is 0
// past n, so those columns add nothing whatever their sign bits.
void build_unit(const uint16_t* V, const float* s, const float* x, uint32_t cols, uint32_t kb, uint32_t K,
                uint32_t c0, uint32_t n, float u_scale, uint8_t* out) {
  static const BuildConsts bc;
  const uint32_t ntiles = (n + kTile - 1) / kTile;
  float* steps = reinterpret_cast<float*>(out);
  float* corrs = steps + K * ntiles;
  int8_t* tables = reinterpret_cast<int8_t*>(out + unit_header_bytes(K, n));
  for (uint32_t k = 0; k < K; ++k) {
    const uint16_t* Vk = V + size_t(kb + k) * cols;
    float corr = 0.0f;
    for (uint32_t t = 0; t < ntiles; ++t) {
      const uint32_t tc = c0 + t * kTile;
      const uint32_t tn = n - t * kTile < kTile ? n - t * kTile : kTile;
      const uint32_t nblocks = (tn + kBlock - 1) / kBlock;
      alignas(64) float z[kTile];
      // The step: the largest sum of one sign over a group of 4 columns, max(sum of
      // z > 0, sum of -z over z < 0), maps to kSumMax. Every subset sum of the 4
      // rounded z_q then fits int8 (4 roundings add at most 2), and the int8
      // range is spent on sums as large as they occur, not on 4 x max|z|: on
      // Gaussian z that is about 3x finer.
      __m512 smax = _mm512_setzero_ps();
      for (uint32_t i = 0; i < nblocks; ++i) {
        const uint32_t c = tc + i * kBlock, left = tn - i * kBlock;
        __m512 v = load16(Vk + c, left);
        if (s != nullptr) v = _mm512_mul_ps(v, load16(s + c, left));
        const __m512 zz = _mm512_mul_ps(v, load16(x + c, left));
        _mm512_store_ps(z + i * kBlock, zz);
        __m512 pos = _mm512_max_ps(zz, _mm512_setzero_ps());
        __m512 neg = _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), zz), _mm512_setzero_ps());
        pos = _mm512_add_ps(pos, _mm512_permute_ps(pos, _MM_SHUFFLE(2, 3, 0, 1)));  // pairs, then groups of 4
        neg = _mm512_add_ps(neg, _mm512_permute_ps(neg, _MM_SHUFFLE(2, 3, 0, 1)));
        pos = _mm512_add_ps(pos, _mm512_permute_ps(pos, _MM_SHUFFLE(1, 0, 3, 2)));
        neg = _mm512_add_ps(neg, _mm512_permute_ps(neg, _MM_SHUFFLE(1, 0, 3, 2)));
        smax = _mm512_max_ps(smax, _mm512_max_ps(pos, neg));
      }
      const float mx = _mm512_reduce_max_ps(smax);
      const __m512 inv = _mm512_set1_ps(mx > 0.0f ? kSumMax / mx : 0.0f);
      __m512i qsum = _mm512_setzero_si512();
      for (uint32_t i = 0; i < nblocks; i += 2) {
        const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(z + i * kBlock), inv));
        const __m512i q1 = i + 1 < nblocks
                               ? _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(z + (i + 1) * kBlock), inv))
                               : _mm512_setzero_si512();
        qsum = _mm512_add_epi32(qsum, _mm512_add_epi32(q0, q1));
        // Bytes 0-15: block i's z_q; 16-31: block i + 1's.
        const __m512i zc = _mm512_castsi256_si512(_mm256_set_m128i(_mm512_cvtepi32_epi8(q1), _mm512_cvtepi32_epi8(q0)));
        for (int h = 0; h < 2; ++h) {
          __m512i sub = _mm512_setzero_si512();
          for (int b = 0; b < 4; ++b)
            sub = _mm512_mask_add_epi8(sub, bc.mask[b], sub, _mm512_permutexvar_epi8(bc.idx[h][b], zc));
          _mm512_store_si512(tables + (size_t(t * kBlocksPerTile + i + h) * K + k) * 64, sub);
        }
      }
      const float step = mx / kSumMax * u_scale;
      steps[t * K + k] = step;
      corr += step * float(_mm512_reduce_add_epi32(qsum));
    }
    corrs[k] = corr;
  }
}

// 16 rows' 64-byte sign slices, 16 dwords each, transposed: out[p] holds
// dword p of rows 0..15 in lanes 0..15.
inline void transpose16(const __m512i (&r)[16], __m512i (&out)[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {  // per 128-bit lane: rows 2i, 2i+1 interleaved by dword
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // per 128-bit lane L: u[4i + m] = dword 4L + m of rows 4i..4i+3
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int m = 0; m < 4; ++m) {
    // Rows 0-7: lanes (L0 of rows 0-3, L0 of rows 4-7, L2 ..., L2 ...) and the L1/L3 pair.
    const __m512i a02 = _mm512_shuffle_i32x4(u[m], u[4 + m], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i a13 = _mm512_shuffle_i32x4(u[m], u[4 + m], _MM_SHUFFLE(3, 1, 3, 1));
    const __m512i b02 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i b13 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], _MM_SHUFFLE(3, 1, 3, 1));
    // a02 = [rows0-3 L0, rows0-3 L2, rows4-7 L0, rows4-7 L2]: lanes 0 and 2 hold L0.
    out[m] = _mm512_shuffle_i32x4(a02, b02, _MM_SHUFFLE(2, 0, 2, 0));       // dword m: L0 of all rows
    out[8 + m] = _mm512_shuffle_i32x4(a02, b02, _MM_SHUFFLE(3, 1, 3, 1));   // dword 8 + m: L2
    out[4 + m] = _mm512_shuffle_i32x4(a13, b13, _MM_SHUFFLE(2, 0, 2, 0));   // dword 4 + m: L1
    out[12 + m] = _mm512_shuffle_i32x4(a13, b13, _MM_SHUFFLE(3, 1, 3, 1));  // dword 12 + m: L3
  }
}

// A row's sign bytes of one slice, zeros past `avail`. Full loads where the
// slice is whole or exactly half (768-column rows end with 32 bytes): masked
// loads that miss the cache are slow on AMD cores, and these stream from
// memory.
inline __m512i load_slice(const uint8_t* p, uint32_t avail, __mmask64 bytes) {
  if (avail >= 64) return _mm512_loadu_si512(p);
  if (avail == 32) return _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_maskz_loadu_epi8(bytes, p);
}

struct RowConsts {
  __m512i nibble;  // 0x0F
  __m512i group;   // byte 4j + q: 16 * q, the offset of the q-th group in a table
  __m512i ones;
  RowConsts()
      : nibble(_mm512_set1_epi8(0x0F)), group(_mm512_set1_epi32(0x30201000)), ones(_mm512_set1_epi8(1)) {}
};

// One pass of ranks kb..kb+K-1 over span [c0, c0 + n) of rows [rb0, r1),
// 16-row groups from rb0, storing rows r_lo <= r < r1:
// yt[r] += sum_k u_k[r] * (2 * (z_q over r's + signs, times the steps) - corr_k).
// Rows go G 16-row groups at a time (each table load then serves G groups,
// and G * K sums are in flight). Grouped: the plane is in 16-row groups and
// rb0 starts one, so a group's dword p of the slice is one 64-byte load, and
// the same bytes kGroupsAhead groups on are prefetched. Else each row's 64
// bytes of the slice are loaded and the group transposed, each row load
// prefetching the same bytes kRowsAhead rows on (rows 96 bytes apart, read 64
// at a time, are a pattern the hardware prefetcher does not follow well).
template <int K, int G, bool Grouped>
void rows_pass(const uint8_t* signs, uint32_t stride, uint32_t c0, uint32_t n, const UnitView& tb, const uint16_t* U,
               uint32_t rows, uint32_t kb, float* yt, uint32_t r_lo, uint32_t rb0, uint32_t r1) {
  static const RowConsts rc;
  const uint32_t first = c0 / 8;
  const uint32_t nblocks = (n + kBlock - 1) / kBlock;
  for (uint32_t rb = rb0; rb < r1; rb += 16 * G) {
    __m512 accf[G][K];
    for (int g = 0; g < G; ++g)
      for (int k = 0; k < K; ++k) accf[g][k] = _mm512_setzero_ps();
    for (uint32_t s0 = 0; s0 < nblocks; s0 += kBlocksPerSlice) {
      const uint32_t at = first + s0 * 2;  // the slice's first sign byte in a row
      // Grouped: where the group's dwords of the slice start, null past r1.
      // Else the slice's sign bytes of each row, transposed: tr[g][p] = dword p of the group's 16 rows.
      const uint8_t* grp[G];
      bool grp_ahead[G];
      __m512i tr[Grouped ? 1 : G][16];
      if constexpr (Grouped) {
        for (int g = 0; g < G; ++g) {
          const uint32_t r = rb + 16 * g;
          grp[g] = r < r1 ? signs + size_t(r) * stride + size_t(at / 4) * 64 : nullptr;
          grp_ahead[g] = r + 16 * kGroupsAhead + 16 <= rows;
        }
      } else {
        const uint32_t avail = stride - at;
        const __mmask64 bytes = avail >= 64 ? ~__mmask64(0) : (__mmask64(1) << avail) - 1;
        for (int g = 0; g < G; ++g) {
          __m512i r[16];
          for (uint32_t j = 0; j < 16; ++j) {
            const uint32_t row = rb + 16 * g + j;
            r[j] = row < r1 ? load_slice(signs + size_t(row) * stride + at, avail, bytes) : _mm512_setzero_si512();
            if (row + kRowsAhead < rows) {  // the same bytes kRowsAhead rows on, spread among the loads
              const char* ahead = reinterpret_cast<const char*>(signs + size_t(row + kRowsAhead) * stride + at);
              _mm_prefetch(ahead, _MM_HINT_T0);
              _mm_prefetch(ahead + (avail >= 64 ? 63 : avail - 1), _MM_HINT_T0);
            }
          }
          transpose16(r, tr[g]);
        }
      }
      const uint32_t s1 = s0 + kBlocksPerSlice < nblocks ? s0 + kBlocksPerSlice : nblocks;
      for (uint32_t b0 = s0; b0 < s1; b0 += kBlocksPerTile) {
        const uint32_t b1 = b0 + kBlocksPerTile < s1 ? b0 + kBlocksPerTile : s1;
        __m512i acc[G][K];
        for (int g = 0; g < G; ++g)
          for (int k = 0; k < K; ++k) acc[g][k] = _mm512_setzero_si512();
        for (uint32_t b = b0; b < b1; b += 2) {
          // Dword (b - s0) / 2 of a row holds blocks b and b + 1: its low nibbles
          // are groups 0, 2 of each, its high nibbles groups 1, 3 (tables above).
          __m512i lo[G], hi[G];
          for (int g = 0; g < G; ++g) {
            __m512i d;
            if constexpr (Grouped) {
              const uint8_t* v = grp[g] + size_t((b - s0) / 2) * 64;
              d = grp[g] != nullptr ? _mm512_load_si512(v) : _mm512_setzero_si512();
              if (grp[g] != nullptr && grp_ahead[g]) {
                _mm_prefetch(reinterpret_cast<const char*>(v + size_t(kGroupsAhead) * 16 * stride), _MM_HINT_T0);
              }
            } else {
              d = tr[g][(b - s0) / 2];
            }
            lo[g] = _mm512_ternarylogic_epi32(d, rc.nibble, rc.group, 0xEA);  // (d & 0x0F) | group
            hi[g] = _mm512_ternarylogic_epi32(_mm512_srli_epi32(d, 4), rc.nibble, rc.group, 0xEA);
          }
          for (int k = 0; k < K; ++k) {
            const __m512i tlo = _mm512_load_si512(tb.t + (size_t(b) * K + k) * 64);
            const __m512i thi = _mm512_load_si512(tb.t + (size_t(b + 1) * K + k) * 64);
            for (int g = 0; g < G; ++g) {
              acc[g][k] = _mm512_dpbusd_epi32(acc[g][k], rc.ones, _mm512_permutexvar_epi8(lo[g], tlo));
              acc[g][k] = _mm512_dpbusd_epi32(acc[g][k], rc.ones, _mm512_permutexvar_epi8(hi[g], thi));
            }
          }
        }
        const uint32_t t = b0 / kBlocksPerTile;
        for (int g = 0; g < G; ++g)
          for (int k = 0; k < K; ++k)
            accf[g][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[g][k]), _mm512_set1_ps(tb.step[t * K + k]), accf[g][k]);
      }
    }
    for (int g = 0; g < G; ++g) {
      const uint32_t r = rb + 16 * g;
      if (r >= r1) break;
      const uint32_t left = r1 - r;
      __m512 v = _mm512_setzero_ps();
      for (int k = 0; k < K; ++k) {
        const __m512 signed_sum = _mm512_sub_ps(_mm512_add_ps(accf[g][k], accf[g][k]), _mm512_set1_ps(tb.corr[k]));
        v = _mm512_fmadd_ps(load16(U + size_t(kb + k) * rows + r, left), signed_sum, v);
      }
      __mmask16 m = tail_mask16(left);
      if (r < r_lo) m &= __mmask16(~((1u << (r_lo - r)) - 1));  // a first group that starts before the call's rows
      _mm512_mask_storeu_ps(yt + r, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, yt + r), v));
    }
  }
}

// The sign bytes of span [c0, c0 + n) of the first kRowsAhead rows from r0,
// asked for before the tables are built so that they arrive meanwhile (the
// loads of rows_pass prefetch kRowsAhead rows on from there). On a 50 MB
// stack of 768 x 768 blocks streamed from memory: 1 thread 3.3-3.7 ms
// against 3.9-4.1 without, 2 threads 2.4-3.3 against 2.8-4.2.
void prefetch_first_rows(const BitStackBlockView& bv, uint32_t rows, uint32_t c0, uint32_t n, uint32_t r0,
                         uint32_t r1) {
  const uint32_t end = r1 - r0 < kRowsAhead ? r1 : r0 + kRowsAhead, bytes = (n + 7) / 8;
  const uint32_t grouped_end = bv.signs16 ? rows / 16 * 16 : 0;
  for (uint32_t r = r0; r < end; ++r) {
    if (r < grouped_end) {  // the group's dwords of the span, once per group
      if (r == r0 || r % 16 == 0) {
        const uint32_t g = r / 16 * 16;
        prefetch_span(bv.signs + size_t(g) * bv.sign_row_bytes + size_t(c0 / 32) * 64, size_t(bytes + 3) / 4 * 64);
      }
    } else {
      prefetch_span(bv.signs + size_t(r) * bv.sign_row_bytes + c0 / 8, bytes);
    }
  }
}

// Rows [a, b) of one layout; rows before r_lo are not stored (a group that
// starts before them).
template <bool Grouped>
void rows_range(const BitStackBlockView& bv, uint32_t K, uint32_t c0, uint32_t n, const UnitView& tb,
                const uint16_t* U, uint32_t rows, uint32_t kb, float* yt, uint32_t r_lo, uint32_t a, uint32_t b) {
  // Pairs of groups, and a last group of at most 16 rows on its own (a pair
  // would spend half its work on rows that are not there).
  const uint32_t rest = (b - a) % 32;
  const uint32_t pairs_end = rest != 0 && rest <= 16 ? b - rest : b;
  for (int single = 0; single < 2; ++single) {
    const uint32_t lo = single ? pairs_end : a, hi = single ? b : pairs_end;
    if (lo >= hi) continue;
    const uint8_t* S = bv.signs;
    const uint32_t st = bv.sign_row_bytes;
    switch (K * 2 + single) {
      case 2: rows_pass<1, 2, Grouped>(S, st, c0, n, tb, U, rows, kb, yt, r_lo, lo, hi); break;
      case 3: rows_pass<1, 1, Grouped>(S, st, c0, n, tb, U, rows, kb, yt, r_lo, lo, hi); break;
      case 4: rows_pass<2, 2, Grouped>(S, st, c0, n, tb, U, rows, kb, yt, r_lo, lo, hi); break;
      case 5: rows_pass<2, 1, Grouped>(S, st, c0, n, tb, U, rows, kb, yt, r_lo, lo, hi); break;
      case 6: rows_pass<3, 2, Grouped>(S, st, c0, n, tb, U, rows, kb, yt, r_lo, lo, hi); break;
      case 7: rows_pass<3, 1, Grouped>(S, st, c0, n, tb, U, rows, kb, yt, r_lo, lo, hi); break;
      case 8: rows_pass<4, 2, Grouped>(S, st, c0, n, tb, U, rows, kb, yt, r_lo, lo, hi); break;
      default: rows_pass<4, 1, Grouped>(S, st, c0, n, tb, U, rows, kb, yt, r_lo, lo, hi); break;
    }
  }
}

// Ranks kb.. of block bv over span c0.. for rows [r0, r1) of one token: the
// full 16-row groups of a plane in that layout from the group holding r0, the
// rest row by row.
void unit_rows(const BitStackBlockView& bv, uint32_t K, uint32_t c0, uint32_t n, const uint8_t* unit,
               uint32_t rows, uint32_t kb, float* yt, uint32_t r0, uint32_t r1) {
  const UnitView tb(unit, K, n);
  const uint16_t* U = reinterpret_cast<const uint16_t*>(bv.U);
  const uint32_t grouped_end = bv.signs16 ? rows / 16 * 16 : 0;
  if (r0 < grouped_end) {
    const uint32_t end = r1 < grouped_end ? r1 : grouped_end;
    rows_range<true>(bv, K, c0, n, tb, U, rows, kb, yt, r0, r0 / 16 * 16, end);
  }
  const uint32_t rest = r0 > grouped_end ? r0 : grouped_end;
  if (rest < r1) rows_range<false>(bv, K, c0, n, tb, U, rows, kb, yt, rest, rest, r1);
}

}  // namespace

void matmul_bitstack_vbmi(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                          uint32_t r1) {
  const BitStackTensor& T = *reinterpret_cast<const BitStackTensor*>(w.data);
  const uint32_t rows = w.rows, cols = w.cols;
  if (r0 >= r1) return;
  alignas(64) uint8_t unit[kMaxUnitBytes];
  for (uint32_t t = 0; t < a.n; ++t) {
    const float* x = a.x + size_t(t) * a.ldx;
    float* yt = y + size_t(t) * ldy;
    for (uint32_t r = r0; r < r1; ++r) yt[r] = 0.0f;
    for (uint32_t b = 0; b < T.n_loaded; ++b) {
      const BitStackBlockView bv = bitstack_block_view(T, b);  // own factors, or block 0's times u_scale
      const uint16_t* V = reinterpret_cast<const uint16_t*>(bv.V);
      for (uint32_t kb = 0; kb < bv.rank; kb += kMaxK) {
        const uint32_t K = bv.rank - kb < kMaxK ? bv.rank - kb : kMaxK;
        for (uint32_t c0 = 0; c0 < cols; c0 += kSpan) {
          const uint32_t n = cols - c0 < kSpan ? cols - c0 : kSpan;
          prefetch_first_rows(bv, rows, c0, n, r0, r1);
          build_unit(V, T.in_scale, x, cols, kb, K, c0, n, bv.u_scale, unit);
          unit_rows(bv, K, c0, n, unit, rows, kb, yt, r0, r1);
        }
      }
    }
  }
}

}  // namespace stk
