// BitStack kernel, AVX2 + FMA + F16C: y = sum_blocks sum_k u_k ⊙ (S (v_k ⊙ s ⊙ x)),
// on the packed sign bits and fp16 factors, never on a dense W. Compiled with
// -mavx2 -mfma -mf16c; only called after run-time detection.
//
// The VNNI kernel's scheme with AVX2 instructions. Per (token, block, rank k,
// tile of columns) z = v_k ⊙ s ⊙ x is quantized to int8 with one step for
// the tile. A row's sum of z over its + signs is then the integer dot product
// of the 0/1 bytes expanded from its sign bits (broadcast, vpshufb, and, min)
// with z_q: vpmaddubsw gives 16-bit pair sums (at most 2 * 127, no
// saturation), added in 16 bits over the tile (at most 32 * 254 per lane) and
// widened once per tile with vpmaddwd. Everything before the float epilogue
// is exact integer arithmetic, so neither the grouping of rows nor the order
// of the sums changes a bit.
//
// Tiles: the columns are cut into 256-column sub-tiles (the VNNI kernel's
// tile); neighbouring sub-tiles share one tile, up to 1024 columns, while the
// largest max|z| among them is at most kMergeRatio (4) times the smallest
// nonzero one, for every rank of the pass. No column's step is then more
// than 4 times (2 bits) what a 256-column tile would give it, an outlier
// channel keeps its sub-tile to itself, and other activations get long tiles,
// so the per-tile reduction is paid about once per 1024 columns. The cut
// depends only on the token's z, so it is the same for every row.
//
// Up to 4 ranks of a block share one expansion of each sign row (one pass
// over the signs per 4 ranks). z_q of a span of 1024 columns (4 KB at 4
// ranks: whole rows for cols <= 1024) is made first, then each row is read
// front to back for the whole span, so the signs stream from memory in order
// (spans narrower than the row are prefetched in software). Rows go in groups of 4 (one float lane each); a
// group at the end of [r0, r1) repeats its last row (reading only that row's
// bytes) and stores only its own rows, so every row runs the very same
// instruction sequence whatever range the call covers. The float epilogue is
// one explicit mul and fma per row, tile and rank, in a fixed order. Stack:
// 5.5 KB (4 KB of it z_q).
#include <immintrin.h>

#include <cstring>

#include "runtime/bitstack_format.h"
#include "runtime/block_pool.h"
#include "runtime/kernels/kernels.h"

namespace stk {
namespace {

constexpr uint32_t kChunk = 32;        // columns per vpmaddubsw
constexpr uint32_t kSub = 256;         // columns of a sub-tile (the finest quantization tile)
constexpr uint32_t kMaxTile = 1024;    // columns of the longest tile
constexpr uint32_t kMaxK = 4;          // ranks per pass over the sign rows
constexpr uint32_t kSpan = 1024;       // columns per span (z_q made before its pass over the rows)
constexpr uint32_t kMaxSubs = kSpan / kSub;  // sub-tiles (and tiles) of a span
constexpr uint32_t kPrefetchRows = 16;       // software prefetch distance, strided spans only
constexpr float kMergeRatio = 4.0f;          // largest / smallest max|z| of the sub-tiles of a tile
static_assert(kMaxTile / kChunk * 2 * 127 < 32768, "16-bit sums over a tile");
static_assert(kSpan % kSub == 0 && kMaxTile % kSub == 0 && kMaxTile <= kSpan, "tiles are whole sub-tiles");

// z_q of up to kMaxK ranks over a span of columns [s0, s0 + n): rank k,
// column s0 + c at q[k][c]; zero past the tensor's columns up to a whole chunk.
struct SpanQ {
  alignas(32) int8_t q[kMaxK][kSpan];
  float scale[kMaxSubs][kMaxK];     // per tile: z's int8 step times the block's U multiplier
  int32_t total[kMaxSubs][kMaxK];   // per tile: the sum of its z_q
};

// A tile of the span and where it lies in a sign row.
struct TileGeom {
  uint32_t col;         // first column, from the span's start (a multiple of kSub)
  uint32_t first;       // its first sign byte in the row
  uint32_t chunks;      // 32-column chunks
  uint32_t full;        // chunks whose 4 sign bytes all lie inside the row
  uint32_t tail_bytes;  // bytes of chunk `full` when chunks > full (1..3)
};

// 8 floats at p, of which `avail` may be read; zeros past them.
inline __m256 load_f8(const float* p, uint32_t avail) {
  if (avail >= 8) return _mm256_loadu_ps(p);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(avail)), lane));
}

// 8 fp16 values at p as floats, of which `avail` may be read; zeros past them.
inline __m256 load_h8(const uint16_t* p, uint32_t avail) {
  if (avail >= 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(tmp, p, size_t(avail) * 2);
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tmp)));
}

// z = v ⊙ s ⊙ x over the 8 columns from i, of which `avail` exist (zero past them).
template <bool Scaled>
inline __m256 z8(const uint16_t* v, const float* s, const float* x, uint32_t i, uint32_t avail) {
  __m256 a = load_h8(v + i, avail);
  if (Scaled) a = _mm256_mul_ps(a, load_f8(s + i, avail));
  return _mm256_mul_ps(a, load_f8(x + i, avail));
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// max |z| over columns [0, n) of v, s, x (n <= kSub).
template <bool Scaled>
float max_abs_z(const uint16_t* v, const float* s, const float* x, uint32_t n) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
  uint32_t i = 0;
  for (; i + 16 <= n; i += 16) {
    m0 = _mm256_max_ps(m0, _mm256_and_ps(z8<Scaled>(v, s, x, i, 8), abs_mask));
    m1 = _mm256_max_ps(m1, _mm256_and_ps(z8<Scaled>(v, s, x, i + 8, 8), abs_mask));
  }
  for (; i < n; i += 8) m0 = _mm256_max_ps(m0, _mm256_and_ps(z8<Scaled>(v, s, x, i, n - i), abs_mask));
  return hmax(_mm256_max_ps(m0, m1));
}

// z over columns [0, n) quantized with 1 / step `inv` into q[0, 32 * chunks)
// (zeros past n); returns the sum of the int8 values.
template <bool Scaled>
int32_t quantize(const uint16_t* v, const float* s, const float* x, uint32_t n, uint32_t chunks, float inv_step,
                 int8_t* q) {
  const __m256 inv = _mm256_set1_ps(inv_step);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  __m256i qsum = _mm256_setzero_si256();
  for (uint32_t ch = 0; ch < chunks; ++ch) {
    const uint32_t c = ch * kChunk;
    __m256i qq[4];
    for (uint32_t j = 0; j < 4; ++j) {
      const uint32_t off = c + 8 * j;
      const __m256 zz = off < n ? z8<Scaled>(v, s, x, off, n - off) : _mm256_setzero_ps();
      qq[j] = _mm256_cvtps_epi32(_mm256_mul_ps(zz, inv));
    }
    qsum = _mm256_add_epi32(qsum, _mm256_add_epi32(_mm256_add_epi32(qq[0], qq[1]), _mm256_add_epi32(qq[2], qq[3])));
    // packs work per 128-bit lane: bytes come out as dwords 0,2,4,6 | 1,3,5,7.
    const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(qq[0], qq[1]), _mm256_packs_epi32(qq[2], qq[3]));
    _mm256_store_si256(reinterpret_cast<__m256i*>(q + c), _mm256_permutevar8x32_epi32(b, order));
  }
  return hsum_i32(qsum);
}

// The smaller of two maxima that is not 0 (0 when both are).
inline float min_nonzero(float a, float b) { return a == 0.0f ? b : (b == 0.0f || a < b ? a : b); }

// Cuts span [s0, s0 + n) of K ranks into tiles (see the file comment),
// quantizes them into sq and fills geom; returns the number of tiles.
template <bool Scaled>
uint32_t plan_span(const uint16_t* V, const float* s, const float* x, uint32_t cols, uint32_t kb, uint32_t K,
                   uint32_t s0, uint32_t n, uint32_t stride, float u_scale, SpanQ* sq, TileGeom* geom) {
  const uint32_t nsub = (n + kSub - 1) / kSub;
  float m[kMaxSubs][kMaxK];
  for (uint32_t j = 0; j < nsub; ++j) {
    const uint32_t c = s0 + j * kSub, len = n - j * kSub < kSub ? n - j * kSub : kSub;
    for (uint32_t k = 0; k < K; ++k) {
      m[j][k] = max_abs_z<Scaled>(V + size_t(kb + k) * cols + c, Scaled ? s + c : nullptr, x + c, len);
    }
  }
  uint32_t nt = 0;
  for (uint32_t j0 = 0; j0 < nsub;) {
    float hi[kMaxK], lo[kMaxK];  // largest and smallest nonzero max|z| of the tile's sub-tiles
    for (uint32_t k = 0; k < K; ++k) hi[k] = lo[k] = m[j0][k];
    uint32_t j1 = j0 + 1;
    for (; j1 < nsub && (j1 - j0 + 1) * kSub <= kMaxTile; ++j1) {
      bool ok = true;
      for (uint32_t k = 0; k < K && ok; ++k) {
        const float l = min_nonzero(lo[k], m[j1][k]);
        ok = l == 0.0f || (hi[k] > m[j1][k] ? hi[k] : m[j1][k]) <= kMergeRatio * l;  // l == 0: all zero so far
      }
      if (!ok) break;
      for (uint32_t k = 0; k < K; ++k) {
        hi[k] = hi[k] > m[j1][k] ? hi[k] : m[j1][k];
        lo[k] = min_nonzero(lo[k], m[j1][k]);
      }
    }
    TileGeom& g = geom[nt];
    g.col = j0 * kSub;
    const uint32_t len = (j1 * kSub < n ? j1 * kSub : n) - g.col;
    g.first = (s0 + g.col) / 8;
    g.chunks = (len + kChunk - 1) / kChunk;
    const uint32_t in_row = (stride - g.first) / 4;
    g.full = g.chunks < in_row ? g.chunks : in_row;
    g.tail_bytes = stride - g.first - 4 * g.full;
    for (uint32_t k = 0; k < K; ++k) {
      const uint32_t c = s0 + g.col;
      sq->scale[nt][k] = hi[k] / 127.0f * u_scale;
      sq->total[nt][k] = quantize<Scaled>(V + size_t(kb + k) * cols + c, Scaled ? s + c : nullptr, x + c, len,
                                          g.chunks, hi[k] > 0.0f ? 127.0f / hi[k] : 0.0f, sq->q[k] + g.col);
    }
    ++nt;
    j0 = j1;
  }
  return nt;
}

// 32 sign bits as 32 bytes of 0/1 (byte j = bit j % 8 of byte j / 8).
struct Expander {
  __m256i shuf, bit, one;
  Expander()
      : shuf(_mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                              2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)),
        bit(_mm256_set1_epi64x(int64_t(0x8040201008040201ull))),
        one(_mm256_set1_epi8(1)) {}
  __m256i operator()(uint32_t bits) const {
    const __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32(int32_t(bits)), shuf);
    return _mm256_min_epu8(_mm256_and_si256(b, bit), one);
  }
};

inline uint32_t load_bits4(const uint8_t* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);  // little-endian, as the format
  return w;
}

inline uint32_t load_bits_tail(const uint8_t* p, uint32_t avail) {
  uint32_t w = 0;
  for (uint32_t b = 0; b < avail && b < 4; ++b) w |= uint32_t(p[b]) << (8 * b);
  return w;
}

// Lane j = the sum of the 8 int32 lanes of t_j.
inline __m128i row_sums4(__m256i t0, __m256i t1, __m256i t2, __m256i t3) {
  const __m256i p01 = _mm256_add_epi32(_mm256_unpacklo_epi32(t0, t1), _mm256_unpackhi_epi32(t0, t1));
  const __m256i p23 = _mm256_add_epi32(_mm256_unpacklo_epi32(t2, t3), _mm256_unpackhi_epi32(t2, t3));
  const __m256i q = _mm256_add_epi32(_mm256_unpacklo_epi64(p01, p23), _mm256_unpackhi_epi64(p01, p23));
  return _mm_add_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
}

// `valid` (<= 4) fp16 values at p as floats; zeros past them.
inline __m128 load_u(const uint16_t* p, uint32_t valid) {
  if (valid == 4) return _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  uint16_t tmp[4] = {0, 0, 0, 0};
  std::memcpy(tmp, p, size_t(valid) * 2);
  return _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(tmp)));
}

// Sign rows s[0, RP) (each at its tile's first byte) against K ranks of z_q
// (rank k at q + k * kSpan): t[j][k] = 8 int32 partial sums of z_q[k] over
// row j's + signs.
template <int RP, int K>
inline void plus_sums(const uint8_t* const* s, const TileGeom& g, const int8_t* q, const Expander& expand,
                      __m256i (*t)[K]) {
  __m256i acc[RP][K];
  for (int j = 0; j < RP; ++j)
    for (int k = 0; k < K; ++k) acc[j][k] = _mm256_setzero_si256();
  const int8_t* qi = q;
  const int8_t* const q_full = q + size_t(g.full) * kChunk;
  const uint8_t* sj[RP];
  for (int j = 0; j < RP; ++j) sj[j] = s[j];
  for (; qi != q_full; qi += kChunk) {
    for (int j = 0; j < RP; ++j) {
      const __m256i e = expand(load_bits4(sj[j]));
      sj[j] += 4;
      for (int k = 0; k < K; ++k) {
        const __m256i z = _mm256_load_si256(reinterpret_cast<const __m256i*>(qi + k * kSpan));
        acc[j][k] = _mm256_add_epi16(acc[j][k], _mm256_maddubs_epi16(e, z));
      }
    }
  }
  uint32_t i = g.full;
  for (; i < g.chunks; ++i) {  // the row's last 1..3 sign bytes
    for (int j = 0; j < RP; ++j) {
      const __m256i e = expand(load_bits_tail(s[j] + 4 * i, g.tail_bytes));
      for (int k = 0; k < K; ++k) {
        const __m256i z = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + k * kSpan + i * kChunk));
        acc[j][k] = _mm256_add_epi16(acc[j][k], _mm256_maddubs_epi16(e, z));
      }
    }
  }
  const __m256i ones = _mm256_set1_epi16(1);
  for (int j = 0; j < RP; ++j)
    for (int k = 0; k < K; ++k) t[j][k] = _mm256_madd_epi16(acc[j][k], ones);
}

// One pass over sign rows [r0, r1) for ranks kb..kb+K-1 and the `nt` tiles
// of a span: yt[r] += u_k[r] * step_ik * (2 * (z_q summed over r's + signs)
// - total_ik), tile by tile, rank by rank. Rows go in groups of 4, RP rows
// at a time through the sign bits (RP * K accumulators stay in registers).
template <int K, int RP>
void rows_pass(const uint8_t* signs, uint32_t stride, const TileGeom* geom, uint32_t nt, const SpanQ& sq,
               const uint16_t* U, uint32_t rows, uint32_t kb, float* yt, uint32_t r0, uint32_t r1) {
  const Expander expand;
  // Sign bytes [span_first, span_end) of each row belong to this span. When
  // that is not the whole row, rows are read in strides, which the hardware
  // prefetchers follow badly: fetch the rows kPrefetchRows ahead.
  const uint32_t span_first = geom[0].first;
  const uint32_t last_end = geom[nt - 1].first + geom[nt - 1].chunks * 4;
  const uint32_t span_end = last_end < stride ? last_end : stride;
  const bool prefetch = span_first > 0 || span_end < stride;
  for (uint32_t r = r0; r < r1; r += 4) {
    const uint32_t valid = r1 - r < 4 ? r1 - r : 4;
    if (prefetch) {
      for (uint32_t j = 0; j < 4 && r + kPrefetchRows + j < r1; ++j) {
        const char* p = reinterpret_cast<const char*>(signs + size_t(r + kPrefetchRows + j) * stride);
        for (uint32_t o = span_first; o < span_end; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
        _mm_prefetch(p + span_end - 1, _MM_HINT_T0);
      }
    }
    const uint8_t* row[4];
    for (uint32_t j = 0; j < 4; ++j) row[j] = signs + size_t(r + (j < valid ? j : valid - 1)) * stride;
    __m128 u4[K];
    for (int k = 0; k < K; ++k) u4[k] = load_u(U + size_t(kb + k) * rows + r, valid);
    float ybuf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (valid < 4) std::memcpy(ybuf, yt + r, size_t(valid) * 4);
    __m128 y4 = valid == 4 ? _mm_loadu_ps(yt + r) : _mm_loadu_ps(ybuf);
    for (uint32_t ti = 0; ti < nt; ++ti) {
      const TileGeom& g = geom[ti];
      const uint8_t* s[4];
      for (uint32_t j = 0; j < 4; ++j) s[j] = row[j] + g.first;
      __m256i t[4][K];
      for (uint32_t j = 0; j < 4; j += RP) {
        if (j < valid) {
          plus_sums<RP, K>(s + j, g, sq.q[0] + g.col, expand, t + j);
        } else {  // rows past r1: their lanes are not stored
          for (int jj = 0; jj < RP; ++jj)
            for (int k = 0; k < K; ++k) t[j + jj][k] = _mm256_setzero_si256();
        }
      }
      for (int k = 0; k < K; ++k) {
        const __m128i s4 = row_sums4(t[0][k], t[1][k], t[2][k], t[3][k]);
        const __m128i d = _mm_sub_epi32(_mm_slli_epi32(s4, 1), _mm_set1_epi32(sq.total[ti][k]));
        const __m128 f = _mm_mul_ps(_mm_cvtepi32_ps(d), _mm_set1_ps(sq.scale[ti][k]));
        y4 = _mm_fmadd_ps(u4[k], f, y4);
      }
    }
    if (valid == 4) {
      _mm_storeu_ps(yt + r, y4);
    } else {
      _mm_storeu_ps(ybuf, y4);
      std::memcpy(yt + r, ybuf, size_t(valid) * 4);
    }
  }
}

}  // namespace

void matmul_bitstack_avx2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                          uint32_t r1) {
  const BitStackTensor& T = *reinterpret_cast<const BitStackTensor*>(w.data);
  const uint32_t rows = w.rows, cols = w.cols;
  if (r0 >= r1) return;
  SpanQ sq;
  TileGeom geom[kMaxSubs];
  for (uint32_t t = 0; t < a.n; ++t) {
    const float* x = a.x + size_t(t) * a.ldx;
    float* yt = y + size_t(t) * ldy;
    for (uint32_t r = r0; r < r1; ++r) yt[r] = 0.0f;
    for (uint32_t b = 0; b < T.n_loaded; ++b) {
      const BitStackBlockView bv = bitstack_block_view(T, b);  // own factors, or block 0's times u_scale
      const uint16_t* U = reinterpret_cast<const uint16_t*>(bv.U);
      const uint16_t* V = reinterpret_cast<const uint16_t*>(bv.V);
      const uint32_t stride = bv.sign_row_bytes;
      for (uint32_t kb = 0; kb < bv.rank; kb += kMaxK) {
        const uint32_t K = bv.rank - kb < kMaxK ? bv.rank - kb : kMaxK;
        for (uint32_t s0 = 0; s0 < cols; s0 += kSpan) {
          const uint32_t n = cols - s0 < kSpan ? cols - s0 : kSpan;
          const uint32_t nt =
              T.in_scale != nullptr
                  ? plan_span<true>(V, T.in_scale, x, cols, kb, K, s0, n, stride, bv.u_scale, &sq, geom)
                  : plan_span<false>(V, nullptr, x, cols, kb, K, s0, n, stride, bv.u_scale, &sq, geom);
          switch (K) {  // rows per pass through the signs: measured best for each rank count
            case 1:
              rows_pass<1, 4>(bv.signs, stride, geom, nt, sq, U, rows, kb, yt, r0, r1);
              break;
            case 2:
              rows_pass<2, 2>(bv.signs, stride, geom, nt, sq, U, rows, kb, yt, r0, r1);
              break;
            case 3:
              rows_pass<3, 1>(bv.signs, stride, geom, nt, sq, U, rows, kb, yt, r0, r1);
              break;
            default:
              rows_pass<4, 1>(bv.signs, stride, geom, nt, sq, U, rows, kb, yt, r0, r1);
              break;
          }
        }
      }
    }
  }
}

}  // namespace stk
