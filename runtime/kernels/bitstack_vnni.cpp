// BitStack kernel, AVX-512 VNNI: y = sum_blocks sum_k u_k ⊙ (S (v_k ⊙ s ⊙ x)),
// on the packed sign bits and fp16 factors, never on a dense W.
//
// Per (token, block, rank k, tile of 256 columns) z = v_k ⊙ s ⊙ x is
// quantized to int8 with one step for the tile (as the integer kernels
// quantize activations). A row's sum of z_q over its + signs is
// vpdpbusd(0/1 bytes expanded from 64 sign bits, z_q), exact in int32, and
// its signed sum is 2 * that - sum(z_q).
//
// Where the time goes, and what this file does about it:
//  - Sign expansion. Up to kMaxK ranks of a block share one pass over the
//    sign rows: each 64-bit word of signs is expanded once (kmov + vmovdqu8)
//    and feeds K vpdpbusd, one per rank, instead of being expanded K times.
//  - Horizontal sums. Per row, rank and tile the int32 lanes are converted to
//    float and multiplied-added with the tile's step into a float vector
//    accumulator, instead of being summed across lanes per (row, rank,
//    tile). At the end of a pass a row's K accumulators are weighted by
//    u_k[r] into one vector, and the vectors of 16 rows are summed across
//    lanes together by one transposing tree (sum16x16).
//  - The - sum(z_q) term does not depend on the row: summed over the tiles
//    with their steps it is one constant per rank (corr_k), and a row
//    subtracts sum_k u_k[r] * corr_k, computed for 16 rows at once.
//
// Stripes: z_q of the pass's K ranks over a stripe of columns fills a fixed
// 8 KB buffer (2048 columns at K = 4, whole rows of most layers), so the
// stack use does not grow with cols. A stripe is quantized, then every row's
// bytes of that stripe are read front to back.
//
// Determinism: rows go in groups of R; a group at the end of [r0, r1)
// repeats its last row (reading only that row's bytes) and stores only its
// own rows, so every row runs the same instruction sequence whatever range
// the call covers; in the 16-row sums every row's lanes are paired the same
// way whatever its slot. Passes, stripes and tiles are cut from rank and
// cols alone, and every float sum has a fixed order. Stack: about 11 KB.
#include <immintrin.h>

#include <cstring>

#include "runtime/bitstack_format.h"
#include "runtime/block_pool.h"
#include "runtime/kernels/avx512_load16.h"
#include "runtime/kernels/kernels.h"

namespace stk {
namespace {

constexpr uint32_t kChunk = 64;                           // columns per vpdpbusd: one 64-bit word of signs
constexpr uint32_t kTile = 256;                           // columns per int8 step of z
constexpr uint32_t kChunksPerTile = kTile / kChunk;
constexpr uint32_t kMaxK = 8;                             // ranks per pass over the sign rows
constexpr uint32_t kStripeBytes = 8192;                   // z_q of one stripe, all ranks of the pass
constexpr uint32_t kMaxTileRanks = kStripeBytes / kTile;  // (tile, rank) pairs of a stripe
static_assert(kStripeBytes >= kMaxK * kTile, "a stripe holds at least one tile at kMaxK ranks");

// 64 sign bits of a row starting at byte `at`, reading only bytes < stride.
inline uint64_t load_bits(const uint8_t* row, uint32_t at, uint32_t stride) {
  uint64_t w = 0;
  if (at + 8 <= stride) {
    std::memcpy(&w, row + at, 8);
  } else {
    for (uint32_t b = 0; at + b < stride && b < 8; ++b) w |= uint64_t(row[at + b]) << (8 * b);
  }
  return w;
}

// z_q of the K ranks of a pass over one stripe of columns. Chunk-major: the K
// 64-byte vectors of the stripe's chunk i are at q + (i * K + k) * kChunk,
// so the row loop reads q front to back.
struct StripeQ {
  alignas(64) int8_t q[kStripeBytes];
  float step[kMaxTileRanks];  // [tile * K + k]: z's int8 step times the block's u_scale
  float corr[kMaxK];          // per rank: sum over the stripe's tiles of step * sum(z_q)
};

// Columns of a stripe at K ranks: as many whole tiles as the buffer holds.
inline uint32_t stripe_cols(uint32_t K) { return kStripeBytes / (K * kTile) * kTile; }

// Quantizes ranks kb..kb+K-1 of z = v ⊙ s ⊙ x over columns [c0, c0 + n)
// into sq, one int8 step per tile; z_q is 0 past column n up to a whole chunk.
void quantize_stripe(const uint16_t* V, const float* s, const float* x, uint32_t cols, uint32_t kb, uint32_t K,
                     uint32_t c0, uint32_t n, float u_scale, StripeQ* sq) {
  alignas(64) float z[kTile];
  const uint32_t ntiles = (n + kTile - 1) / kTile;
  for (uint32_t k = 0; k < K; ++k) {
    const uint16_t* Vk = V + size_t(kb + k) * cols;
    float corr = 0.0f;
    for (uint32_t t = 0; t < ntiles; ++t) {
      const uint32_t tc = c0 + t * kTile;
      const uint32_t tn = n - t * kTile < kTile ? n - t * kTile : kTile;
      const uint32_t groups = (tn + kChunk - 1) / kChunk * (kChunk / 16);  // 16-column groups, whole chunks
      __m512 amax = _mm512_setzero_ps();
      for (uint32_t i = 0; i < groups; ++i) {
        const uint32_t c = tc + i * 16;
        const uint32_t left = i * 16 < tn ? tn - i * 16 : 0;
        __m512 v = load16(Vk + c, left);
        if (s != nullptr) v = _mm512_mul_ps(v, load16(s + c, left));
        const __m512 zz = _mm512_mul_ps(v, load16(x + c, left));
        _mm512_store_ps(z + i * 16, zz);
        amax = _mm512_max_ps(amax, _mm512_abs_ps(zz));
      }
      const float mx = _mm512_reduce_max_ps(amax);
      const float step = mx / 127.0f * u_scale;
      const __m512 inv = _mm512_set1_ps(mx > 0.0f ? 127.0f / mx : 0.0f);
      __m512i qsum = _mm512_setzero_si512();
      int8_t* dst = sq->q + (size_t(t) * kChunksPerTile * K + k) * kChunk;
      for (uint32_t i = 0; i < groups; ++i) {
        const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(z + i * 16), inv));
        // Group i is bytes (i % 4) * 16 of the tile's chunk i / 4.
        _mm_store_si128(reinterpret_cast<__m128i*>(dst + (i / 4) * K * kChunk + (i % 4) * 16),
                        _mm512_cvtsepi32_epi8(q));
        qsum = _mm512_add_epi32(qsum, q);
      }
      sq->step[t * K + k] = step;
      corr += step * float(_mm512_reduce_add_epi32(qsum));
    }
    sq->corr[k] = corr;
  }
}

// Rows handled together per rank count: each z_q vector is used by R rows,
// and R * K independent int32 sums keep the vpdpbusd units busy. The R * K
// int32 sums and R expanded sign vectors stay in the 32 zmm registers; the
// float accumulators, touched once per tile, may live on the stack. Measured
// on an AMD EPYC with AVX-512 (stories110M and TinyLlama shapes): 4 rows
// beat 2 by up to 20 % at K = 3 and are no slower at K = 4; at K = 8, 2 rows
// beat 1.
constexpr int rows_per_group(int K) { return K <= 4 ? 4 : 2; }

// Sums z_q over R rows' + signs for chunks [0, nchunks) of a tile into int32
// lanes d, then adds d, converted to float and times the tile's steps, to
// acc. d starts from zero each tile, so its dependency chains are short.
// Safe: the stripe's last, partial tile, whose sign words may run past the
// row's last byte; load_bits reads only the row's bytes.
template <int K, int R, bool Safe>
inline void tile_pass(const uint8_t* const* row, uint32_t at, uint32_t stride, uint32_t nchunks, const int8_t* q,
                      const float* step, __m512 (&acc)[R][K]) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i d[R][K];
  for (int j = 0; j < R; ++j)
    for (int k = 0; k < K; ++k) d[j][k] = _mm512_setzero_si512();
  for (uint32_t i = 0; i < nchunks; ++i, q += K * kChunk) {
    for (int j = 0; j < R; ++j) {
      uint64_t bits;
      if (Safe) {
        bits = load_bits(row[j], at + 8 * i, stride);
      } else {
        std::memcpy(&bits, row[j] + at + 8 * i, 8);
      }
      const __m512i e = _mm512_maskz_mov_epi8(bits, ones);  // the 64 signs as 0/1 bytes, expanded once
      for (int k = 0; k < K; ++k) d[j][k] = _mm512_dpbusd_epi32(d[j][k], e, _mm512_load_si512(q + k * kChunk));
    }
  }
  for (int j = 0; j < R; ++j) {
    for (int k = 0; k < K; ++k) {
      acc[j][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d[j][k]), _mm512_set1_ps(step[k]), acc[j][k]);
    }
  }
}

// Lane m of the result = the sum of the 16 lanes of v[m]: a transposing
// tree (46 instructions for 16 rows, against about 8 per row for a
// reduction of each). Every row's lanes are paired in the same pattern
// whatever its slot, so a row's sum does not depend on its neighbours.
inline __m512 sum16x16(const float (*v)[16]) {
  __m512 s1[8], s2[4], s3[2];
  for (int i = 0; i < 8; ++i) {  // rows 2i, 2i+1: 256-bit halves added, each row in two 128-bit lanes
    const __m512 a = _mm512_load_ps(v[2 * i]), b = _mm512_load_ps(v[2 * i + 1]);
    s1[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                          _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  for (int i = 0; i < 4; ++i) {  // 128-bit lanes added: 128-bit lane m holds row 4i+m
    s2[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s1[2 * i], s1[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_f32x4(s1[2 * i], s1[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  }
  for (int i = 0; i < 2; ++i) {  // floats (0, 2) and (1, 3) of each lane: rows 8i+m and 8i+4+m, two each
    s3[i] = _mm512_add_ps(_mm512_shuffle_ps(s2[2 * i], s2[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                          _mm512_shuffle_ps(s2[2 * i], s2[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  // Floats 0 + 1 and 2 + 3: element 4m + p holds row 4p + m; put row j at element j.
  const __m512 s4 = _mm512_add_ps(_mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, s4);
}

// One pass of ranks kb..kb+K-1 over the sign bytes of stripe [c0, c0 + n)
// of rows [r0, r1): yt[r] += sum_k u_k[r] * (2 * (z_q summed over r's +
// signs, times the steps) - corr_k). Rows go in batches of 16 for the
// epilogue: u_k, corr and y are handled as vectors across the batch's rows,
// and its 16 lane sums come out of one sum16x16.
template <int K>
void rows_pass(const uint8_t* signs, uint32_t stride, uint32_t c0, uint32_t n, const StripeQ& sq, const uint16_t* U,
               uint32_t rows, uint32_t kb, float* yt, uint32_t r0, uint32_t r1) {
  constexpr int R = rows_per_group(K);
  static_assert(16 % R == 0, "row groups tile a batch");
  const uint32_t full = n / kTile;  // whole tiles: all their 32 sign bytes lie inside the row
  const uint32_t tail_chunks = (n % kTile + kChunk - 1) / kChunk;  // chunks of a last, partial tile
  const uint32_t first = c0 / 8;
  alignas(64) float ub[K][16];  // u_k of the batch's rows (0 past r1)
  alignas(64) float vb[16][16];  // per row of the batch: sum_k u_k * acc_k, lanes not yet added
  for (uint32_t rb = r0; rb < r1; rb += 16) {
    const uint32_t nb = r1 - rb < 16 ? r1 - rb : 16;
    const __mmask16 live = tail_mask16(nb);
    __m512 c = _mm512_setzero_ps();  // sum_k u_k * corr_k, per row
    for (int k = 0; k < K; ++k) {
      const __m512 u = load16(U + size_t(kb + k) * rows + rb, nb);
      _mm512_store_ps(ub[k], u);
      c = _mm512_fmadd_ps(u, _mm512_set1_ps(sq.corr[k]), c);
    }
    uint32_t j0 = 0;
    for (; j0 < nb; j0 += R) {
      const uint8_t* row[R];
      for (int j = 0; j < R; ++j) row[j] = signs + size_t(rb + (j0 + j < nb ? j0 + j : nb - 1)) * stride;
      __m512 acc[R][K];
      for (int j = 0; j < R; ++j)
        for (int k = 0; k < K; ++k) acc[j][k] = _mm512_setzero_ps();
      const int8_t* q = sq.q;
      for (uint32_t t = 0; t < full; ++t, q += kChunksPerTile * K * kChunk) {
        tile_pass<K, R, false>(row, first + t * (kTile / 8), stride, kChunksPerTile, q, sq.step + t * K, acc);
      }
      if (tail_chunks > 0) {
        tile_pass<K, R, true>(row, first + full * (kTile / 8), stride, tail_chunks, q, sq.step + full * K, acc);
      }
      for (int j = 0; j < R; ++j) {  // a repeated last row lands in a slot past nb, never stored
        __m512 v = _mm512_mul_ps(acc[j][0], _mm512_set1_ps(ub[0][j0 + j]));
        for (int k = 1; k < K; ++k) v = _mm512_fmadd_ps(acc[j][k], _mm512_set1_ps(ub[k][j0 + j]), v);
        _mm512_store_ps(vb[j0 + j], v);
      }
    }
    for (; j0 < 16; ++j0) _mm512_store_ps(vb[j0], _mm512_setzero_ps());  // slots of no row
    const __m512 sum = sum16x16(vb);
    const __m512 d = _mm512_sub_ps(_mm512_add_ps(sum, sum), c);  // 2 * (+ sum) - corr term
    _mm512_mask_storeu_ps(yt + rb, live, _mm512_add_ps(load16(yt + rb, nb), d));
  }
}

}  // namespace

void matmul_bitstack_vnni(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                          uint32_t r1) {
  const BitStackTensor& T = *reinterpret_cast<const BitStackTensor*>(w.data);
  const uint32_t rows = w.rows, cols = w.cols;
  if (r0 >= r1) return;
  StripeQ sq;
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
        const uint32_t width = stripe_cols(K);
        for (uint32_t c0 = 0; c0 < cols; c0 += width) {
          const uint32_t n = cols - c0 < width ? cols - c0 : width;
          quantize_stripe(V, T.in_scale, x, cols, kb, K, c0, n, bv.u_scale, &sq);
          switch (K) {
            case 1: rows_pass<1>(bv.signs, stride, c0, n, sq, U, rows, kb, yt, r0, r1); break;
            case 2: rows_pass<2>(bv.signs, stride, c0, n, sq, U, rows, kb, yt, r0, r1); break;
            case 3: rows_pass<3>(bv.signs, stride, c0, n, sq, U, rows, kb, yt, r0, r1); break;
            case 4: rows_pass<4>(bv.signs, stride, c0, n, sq, U, rows, kb, yt, r0, r1); break;
            case 5: rows_pass<5>(bv.signs, stride, c0, n, sq, U, rows, kb, yt, r0, r1); break;
            case 6: rows_pass<6>(bv.signs, stride, c0, n, sq, U, rows, kb, yt, r0, r1); break;
            case 7: rows_pass<7>(bv.signs, stride, c0, n, sq, U, rows, kb, yt, r0, r1); break;
            default: rows_pass<8>(bv.signs, stride, c0, n, sq, U, rows, kb, yt, r0, r1); break;
          }
        }
      }
    }
  }
}

}  // namespace stk
