// AVX-512 VBMI + VNNI kernel for N:M sparse weights whose kept values are
// integers (Q8, Q4) and whose pattern keeps half of each group (1:2, 2:4, 4:8,
// 8:16): integer dot products with the int8 copy of the activations that the
// kernel table asks for (groups of 32 inputs, one float scale each).
//
// A chunk is 64 kept values = 128 inputs. Per row and chunk: the index bits
// (8*b bytes, one full load) become 64 input offsets with vpermb +
// vpmultishiftqb + one vpternlogd; the kept values are one 64-byte load (Q8)
// or a 32-byte load split into nibbles (Q4, whose low nibbles then high
// nibbles come out as kept values 0-15, 32-47, 16-31, 48-63: the offsets are
// made in that same order, so the codes need no shuffle). Per token: one
// vpermt2b picks the 64 int8 inputs from the chunk's 128, vpdpbusd multiplies.
// Scales: per 8 chunks the 16 fp16 value-group scales are one vector, spread
// to lanes with vpermps from a per-call table (any group size); the
// activation scale of each lane comes from a per-call, per-token table.
// Q8 goes in as w + 128 (unsigned), 128 * (sum of the picked inputs) taken
// off per lane; Q4 adds m * (sum of the picked inputs).
//
// 2:4 goes four chunks at a time ("quads": 256 kept values, 512 inputs) so
// that each of the 16 lanes keeps one activation group and one value group
// through all four steps: the integer sums go to float once per quad instead
// of once per chunk, which was most of the per-chunk work (2:4-q4 decode
// 1.4x faster). Lane l takes, in step k, its group's kept values
// 16l + 4k .. +3. The index bits of a lane pair and step then sit in one
// qword (one vpmultishiftqb of the quad's 64 index bytes); the inputs come
// from a per-call copy of the activations in step order (lane l of step k:
// inputs 32l + 8k .. +7). Q4 codes: a qword permute per two steps plus a
// vpmultishiftqb (low nibbles to even lanes, high to odd). Q8 codes: one 4x4
// dword transpose per quad, whose lane order (position 4i + j holds lane
// 4j + i) the index bits (one vpermd), the tables and the input copy follow;
// there the copy holds x + 128 and the weights are the signed operand, so
// the correction is 128 * (sum of the lane's weights). The chunks after the
// last quad take the per-chunk path.
//
// Only full loads in the main loop (masked loads that miss the cache are slow
// on AMD cores); columns go in stripes of kStripeChunks chunks so the tables
// have a fixed size; up to four tokens share each decoded chunk, and a single
// token (decode) prefetches each row's values and indices ahead. The kept
// values of full groups after the last full chunk make one more, zero-padded
// chunk (Partial); those of a last group shorter than M go through the scalar
// loop of sparse_x86_common.h. Other tensors go to the float kernel
// (sparse_avx512.cpp). Compiled with -mavx512f -mavx512bw -mavx512vl
// -mavx512vbmi -mavx512vnni -mfma -mf16c; filed only when the CPU has them.
#include <immintrin.h>

#include <cstring>

#include "runtime/kernels/prefetch_x86.h"
#include "runtime/kernels/sparse_x86_common.h"

namespace stk {
namespace {

using namespace sparse_x86;

// 8192 inputs. The tables below live on the calling thread's stack, in size
// proportional to the stripe: 57 KiB at this width (tests/stack_use_test.cpp
// holds every kernel within STK_STACK_USE_BYTES). Rows wider than a stripe
// are walked once per stripe.
constexpr uint32_t kStripeChunks = 64;
constexpr int kTile = 4;
constexpr uint32_t kPrefetchChunks = 128;  // decode_row
constexpr uint32_t kStripeQuads = kStripeChunks / 4;
// Code bytes per chunk of 64 kept values: Q8 one per value, Q4 one per two.
template <ValueKind VF>
constexpr uint32_t kChunkCodeBytes = VF == ValueKind::Q8 ? 64 : 32;

inline __mmask16 mask16(uint32_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// Kept value (within the chunk) that byte j of the value vector holds.
constexpr uint8_t kQ4KeptBase[4] = {0, 32, 16, 48};  // Q4: low nibbles of 2 blocks, then high nibbles
constexpr uint32_t kept_of_byte(ValueKind vf, uint32_t j) { return vf == ValueKind::Q8 ? j : kQ4KeptBase[j / 16] + j % 16; }

// Index of a value kind in the tables below.
constexpr uint32_t kind_index(ValueKind vf) { return vf == ValueKind::Q8 ? 0 : 1; }

// The per-chunk path's controls for each value kind (0: Q8, 1: Q4) and index
// width b (patterns N:2N with M = 2^b, b = 1..4), worked out at compile time
// (see run() for what building them per call cost).
struct ChunkTables {
  alignas(64) uint8_t perm_sel[2][4][64];   // qword q <- the index bytes of its 8 kept values
  alignas(64) uint8_t shift_ctl[4][64];     // byte i of each qword <- bits from i*b
  alignas(64) uint8_t group_off[2][4][64];  // byte j: (kept(j) / N) * M, a multiple of M = 2^b
  alignas(64) int32_t lane_kept[2][16];     // dword lane l: its first kept value (its 4 share all scales)
  alignas(64) int32_t lane_act[2][16];      // dword lane l: its activation group, kept / 16 for every N:2N pattern
};

constexpr ChunkTables make_chunk_tables() {
  ChunkTables t{};
  for (uint32_t kind = 0; kind < 2; ++kind) {
    const ValueKind vf = kind == 0 ? ValueKind::Q8 : ValueKind::Q4;
    for (uint32_t b = 1; b <= 4; ++b) {
      for (uint32_t j = 0; j < 64; ++j) {
        const uint32_t k = kept_of_byte(vf, j), first = kept_of_byte(vf, j / 8 * 8);
        t.perm_sel[kind][b - 1][j] = uint8_t(first * b / 8 + j % 8);
        t.shift_ctl[b - 1][j] = uint8_t((j % 8) * b);
        t.group_off[kind][b - 1][j] = uint8_t((k >> (b - 1)) << b);
      }
    }
    for (uint32_t l = 0; l < 16; ++l) {
      t.lane_kept[kind][l] = int32_t(kept_of_byte(vf, 4 * l));
      t.lane_act[kind][l] = t.lane_kept[kind][l] / 16;
    }
  }
  return t;
}

constexpr ChunkTables kChunkTables = make_chunk_tables();

struct Consts {
  __m512i perm_sel;
  __m512i shift_ctl;
  __m512i idx_mask;
  __m512i group_off;
};

Consts load_consts(const Plan& p) {
  const uint32_t kind = kind_index(p.vf), b = p.L.bits - 1;  // int8_half_pattern: bits 1..4
  Consts c;
  c.perm_sel = _mm512_load_si512(kChunkTables.perm_sel[kind][b]);
  c.shift_ctl = _mm512_load_si512(kChunkTables.shift_ctl[b]);
  c.idx_mask = _mm512_set1_epi8(char((1u << p.L.bits) - 1u));
  c.group_off = _mm512_load_si512(kChunkTables.group_off[kind][b]);
  return c;
}

// Q8's lane order after the transpose: position p holds lane quad_lane(p).
constexpr uint32_t quad_lane(ValueKind vf, uint32_t p) { return vf == ValueKind::Q8 ? 4 * (p % 4) + p / 4 : p; }

// The quad path's controls (see the top of the file), worked out at compile
// time.
struct QuadTables {
  alignas(64) uint8_t index_ctl[4][64];  // step k, byte 8m + i: bit of kept 16(2m + i/4) + 4k + i%4 in qword m
  alignas(64) uint8_t code_ctl[2][64];   // Q4, step k % 2: low nibbles of dword k % 2 to even lanes, high nibbles to odd
  alignas(64) int64_t code_sel[2][8];    // Q4, step k / 2: qword m <- code qword 2m + k/2 (block m, bytes 8(k/2) ..)
  alignas(64) uint8_t group_off[64];     // byte 4l + b: 8l + 4(b/2), the first input of its group of four in the step copy
  alignas(64) int32_t lane[2][16];       // per value kind, position p <- quad_lane(p) (Q8: the index bits' vpermd)
  alignas(64) int32_t lane_kept[2][16];  // per value kind, position p <- 16 * quad_lane(p), the lane's first kept value
  // The step-order input copy, per value kind (0: Q8, 1: Q4) and step: the
  // 8 qwords of each half of the step's 128 bytes come from 4 of the quad's
  // 8 input vectors, two vpermt2q (same indices, on two vector pairs) and a
  // blend. Lane L's inputs of step k are qword 4L + k of the quad.
  alignas(64) int64_t copy_sel[2][4][8];
};

constexpr QuadTables make_quad_tables() {
  QuadTables t{};
  for (uint32_t j = 0; j < 64; ++j) {
    const uint32_t i = j % 8, odd = i / 4, b = i % 4;
    for (uint32_t k = 0; k < 4; ++k) t.index_ctl[k][j] = uint8_t(32 * odd + 8 * k + 2 * b);
    for (uint32_t h = 0; h < 2; ++h) t.code_ctl[h][j] = uint8_t(32 * h + 8 * b + 4 * odd);
    t.group_off[j] = uint8_t(8 * (j / 4) + 4 * ((j % 4) / 2));
  }
  for (uint32_t m = 0; m < 8; ++m) t.code_sel[0][m] = 2 * m, t.code_sel[1][m] = 2 * m + 1;
  for (uint32_t p = 0; p < 16; ++p) {
    for (uint32_t kind = 0; kind < 2; ++kind) {
      t.lane[kind][p] = int32_t(quad_lane(kind == 0 ? ValueKind::Q8 : ValueKind::Q4, p));
      t.lane_kept[kind][p] = 16 * t.lane[kind][p];
    }
  }
  // Half h, qword j (position 8h + j). Q8: lane 4(j%4) + 2h + j/4, in vector
  // 2(j%4) + h, pairs (h, h+2) for j%4 < 2 and (h+4, h+6) after. Q4: lane
  // 8h + j, in vector 4h + j/2, pairs (4h, 4h+1) then (4h+2, 4h+3).
  for (uint32_t k = 0; k < 4; ++k) {
    for (uint32_t j = 0; j < 8; ++j) {
      t.copy_sel[0][k][j] = int64_t(8 * (j % 2) + 4 * (j / 4) + k);
      t.copy_sel[1][k][j] = int64_t(8 * ((j / 2) % 2) + 4 * (j % 2) + k);
    }
  }
  return t;
}

constexpr QuadTables kQuadTables = make_quad_tables();

struct QuadConsts {
  __m512i index_ctl[4];
  __m512i code_ctl[2];
  __m512i code_sel[2];
  __m512i group_off;
  __m512i lane_sel;
};

QuadConsts load_quad_consts() {
  const QuadTables& t = kQuadTables;
  QuadConsts q;
  for (uint32_t k = 0; k < 4; ++k) q.index_ctl[k] = _mm512_load_si512(t.index_ctl[k]);
  for (uint32_t h = 0; h < 2; ++h) q.code_ctl[h] = _mm512_load_si512(t.code_ctl[h]), q.code_sel[h] = _mm512_load_si512(t.code_sel[h]);
  q.group_off = _mm512_load_si512(t.group_off);
  q.lane_sel = _mm512_load_si512(t.lane[0]);
  return q;
}

// The 512 int8 inputs of one quad (from x) in step order (into d: step k's
// 16 lanes of 8 bytes at d + 128k, lanes in position order). Q8 adds 128.
template <ValueKind VF>
inline void copy_step_order(const int8_t* x, int8_t* d) {
  constexpr uint32_t kind = kind_index(VF);
  const __m512i flip = _mm512_set1_epi8(char(VF == ValueKind::Q8 ? 0x80 : 0));
  __m512i v[8];
  for (uint32_t i = 0; i < 8; ++i) v[i] = _mm512_xor_si512(_mm512_loadu_si512(x + 64 * i), flip);
  for (uint32_t k = 0; k < 4; ++k) {
    const __m512i sel = _mm512_load_si512(kQuadTables.copy_sel[kind][k]);
    for (uint32_t h = 0; h < 2; ++h) {
      __m512i lo, hi;
      if (VF == ValueKind::Q8) {
        lo = _mm512_permutex2var_epi64(v[h], sel, v[h + 2]), hi = _mm512_permutex2var_epi64(v[h + 4], sel, v[h + 6]);
      } else {
        lo = _mm512_permutex2var_epi64(v[4 * h], sel, v[4 * h + 1]), hi = _mm512_permutex2var_epi64(v[4 * h + 2], sel, v[4 * h + 3]);
      }
      const __mmask8 from_hi = VF == ValueKind::Q8 ? __mmask8(0xCC) : __mmask8(0xF0);
      _mm512_store_si512(d + 128 * k + 64 * h, _mm512_mask_blend_epi64(from_hi, lo, hi));
    }
  }
}

// Byte offsets (0..127) of chunk c's 64 inputs from its first input, in value
// byte order. Reads exactly the chunk's 8*b index bytes (b = 3: 24 of the 32
// loaded; the index plane's 8 padding bytes keep the load inside the tensor).
inline __m512i offsets(const Consts& k, const uint8_t* idx_row, uint32_t c, uint32_t bits) {
  const uint8_t* p = idx_row + uint64_t(c) * 8 * bits;
  __m512i raw;
  if (bits == 1) {
    raw = _mm512_zextsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  } else if (bits == 2) {
    raw = _mm512_zextsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    raw = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  const __m512i q = _mm512_permutexvar_epi8(k.perm_sel, raw);
  // (field & mask) | group offset: the offset's low b bits are zero.
  return _mm512_ternarylogic_epi32(_mm512_multishift_epi64_epi8(k.shift_ctl, q), k.idx_mask, k.group_off, 0xEA);
}

// Q4 codes of 64 kept values (two 16-byte blocks) in value byte order.
inline __m512i q4_codes(const uint8_t* blk) {
  const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
  const __m512i both = _mm512_mask_srli_epi16(v, __mmask32(0xFFFF0000u), v, 4);  // high nibbles in the top half
  return _mm512_and_si512(both, _mm512_set1_epi8(15));
}

// Per stripe: lane -> value group (relative to the 16 scales loaded per 8
// chunks), and per token lane -> activation scale; one more entry for the
// partial chunk.
struct Tables {
  alignas(64) int32_t group[kStripeChunks + 1][16];
  uint32_t base[kStripeChunks / 8 + 1];  // first group loaded for chunks 8i .. 8i+7
  bool full;                             // >= 16 groups per row: full 16-half loads
  alignas(64) float xs[kTile][kStripeChunks + 1][16];
  // Quad path, per lane position: value group relative to the 16 scales
  // loaded at qbase, activation scale, and the inputs in step order (per
  // token, quad, step: 128 bytes).
  alignas(64) int32_t qgroup[kStripeQuads][16];
  uint32_t qbase[kStripeQuads];
  alignas(64) float qxs[kTile][kStripeQuads][16];
  alignas(64) int8_t xq[kTile][kStripeQuads][512];
};

struct Stripe {
  uint32_t c0, n;       // first chunk, chunks
  uint32_t vgroup, ng;  // kept values per value group, value groups per row
  uint32_t partial;     // 1: the row's partial chunk follows as chunk c0 + n (last stripe only)
};

// The P < 64 kept values of full groups after a row's last full chunk (on
// the stories15M shape's 288-input rows, 16 of 144 under 2:4) are one more
// chunk: its inputs (2P per token, once per call) and each row's codes and
// index bits are copied into zero-padded chunk-sized buffers, and the chunk
// code runs on those unchanged, into the row's own sums, reading nothing past
// the row. The padding adds nothing: a padded code is 0 (Q8: w + 128 = 128,
// which the 128 * sum taken off cancels), and a padded lane's offset points
// at an input at or past 2P, which is 0. (A scalar loop over these values in
// float was most of the 2:4 decode step on that shape.)
struct Partial {
  uint32_t c = 0;  // chunk index
  __mmask64 code_mask = 0;  // code bytes: P (Q8), 16 per 32 kept (Q4)
  __mmask32 index_mask = 0;
  alignas(64) int8_t x[kTile][128];
  const int8_t* xp[kTile];

  template <ValueKind VF>
  void init(const Plan& p, const Activations& a, uint32_t t0, uint32_t nt, uint32_t chunk_index, uint32_t P) {
    c = chunk_index;
    const uint32_t code_bytes = VF == ValueKind::Q8 ? P : (P + 31) / 32 * 16, index_bytes = (P * p.L.bits + 7) / 8;
    code_mask = code_bytes >= 64 ? ~__mmask64(0) : (__mmask64(1) << code_bytes) - 1;
    index_mask = __mmask32((uint64_t(1) << index_bytes) - 1);
    copy_padded_inputs(a, t0, nt, uint64_t(c) * 128, 2 * P, 128, &x[0][0], xp);
  }
  // Row r's codes and index bits, zero-padded, into the chunk-sized buffers.
  // Masked loads, which AMD cores serve slowly from memory, but in decode
  // these bytes follow the row's last full chunk and were prefetched with it.
  template <ValueKind VF>
  void load_row(const Plan& p, uint32_t r, uint8_t* codes, uint8_t* index) const {
    _mm512_store_si512(codes, _mm512_maskz_loadu_epi8(code_mask, p.value_row(r) + uint64_t(c) * kChunkCodeBytes<VF>));
    _mm256_store_si256(reinterpret_cast<__m256i*>(index),
                       _mm256_maskz_loadu_epi8(index_mask, p.index_row(r) + uint64_t(c) * 8 * p.L.bits));
  }
};

// Per call, vector code only: a per-lane division by the group size would
// otherwise cost as much as the rows of a small chunk. Power-of-two groups
// shift; others divide in float (kept indices are < 2^18, so the truncated
// quotient is exact).
void make_tables(const Plan& p, const Activations& a, uint32_t t0, uint32_t nt, const Stripe& s, bool quads, Tables* T) {
  const uint32_t act_groups = (p.cols + 31) / 32, kind = kind_index(p.vf);
  const __m512i lk = _mm512_load_si512(kChunkTables.lane_kept[kind]);
  const __m512i lane_act = _mm512_load_si512(kChunkTables.lane_act[kind]);
  const __m512 vg = _mm512_set1_ps(float(s.vgroup));
  const bool pow2 = (s.vgroup & (s.vgroup - 1)) == 0;
  const __m128i vshift = _mm_cvtsi32_si128(int(__builtin_ctz(s.vgroup)));
  T->full = s.ng >= 16;
  // Per-chunk entries only where the per-chunk path runs: after the last quad.
  const uint32_t i0 = quads ? s.n / 4 * 4 : 0;
  for (uint32_t i = i0; i < s.n + s.partial; ++i) {
    const uint32_t c = s.c0 + i;
    if (i % 8 == 0 || i == i0) {
      const uint32_t first = (s.c0 + i / 8 * 8) * 64 / s.vgroup;
      T->base[i / 8] = !T->full ? 0 : first < s.ng - 16 ? first : s.ng - 16;
    }
    const __m512i k = _mm512_add_epi32(lk, _mm512_set1_epi32(int32_t(c * 64)));
    const __m512i g = pow2 ? _mm512_srl_epi32(k, vshift) : _mm512_cvttps_epi32(_mm512_div_ps(_mm512_cvtepi32_ps(k), vg));
    _mm512_store_si512(T->group[i], _mm512_sub_epi32(g, _mm512_set1_epi32(int32_t(T->base[i / 8]))));
    // Four activation groups per chunk; the partial chunk may have fewer.
    const uint32_t have = act_groups - 4 * c;
    const __mmask8 xs_mask = have >= 4 ? __mmask8(0xF) : __mmask8((1u << have) - 1);
    for (uint32_t t = 0; t < nt; ++t) {
      const __m128 xs4 = _mm_maskz_loadu_ps(xs_mask, a.q8_scales + size_t(t0 + t) * act_groups + 4 * c);
      _mm512_store_ps(T->xs[t][i], _mm512_permutexvar_ps(lane_act, _mm512_castps128_ps512(xs4)));
    }
  }
  if (!quads) return;
  // Lane l of quad Q holds kept values 256Q + 16l .. +15, all in one value
  // group (groups are multiples of 32 kept values) and one activation group.
  const __m512i lanes = _mm512_load_si512(kQuadTables.lane[kind]);
  const __m512i quad_kept = _mm512_load_si512(kQuadTables.lane_kept[kind]);
  for (uint32_t q = 0; q < s.n / 4; ++q) {
    const uint32_t Q = s.c0 / 4 + q, first = Q * 256 / s.vgroup;
    T->qbase[q] = !T->full ? 0 : first < s.ng - 16 ? first : s.ng - 16;
    const __m512i k = _mm512_add_epi32(quad_kept, _mm512_set1_epi32(int32_t(Q * 256)));
    const __m512i g = pow2 ? _mm512_srl_epi32(k, vshift) : _mm512_cvttps_epi32(_mm512_div_ps(_mm512_cvtepi32_ps(k), vg));
    _mm512_store_si512(T->qgroup[q], _mm512_sub_epi32(g, _mm512_set1_epi32(int32_t(T->qbase[q]))));
    for (uint32_t t = 0; t < nt; ++t) {
      const float* xs = a.q8_scales + size_t(t0 + t) * act_groups + uint64_t(Q) * 16;
      _mm512_store_ps(T->qxs[t][q], _mm512_permutexvar_ps(lanes, _mm512_loadu_ps(xs)));
      const int8_t* x = a.q8 + size_t(t0 + t) * a.ldq + uint64_t(Q) * 512;
      if (p.vf == ValueKind::Q8) {
        copy_step_order<ValueKind::Q8>(x, T->xq[t][q]);
      } else {
        copy_step_order<ValueKind::Q4>(x, T->xq[t][q]);
      }
    }
  }
}

inline __m512 load_scales(const uint16_t* h, bool full, uint32_t avail) {
  if (full) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h)));
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(avail), h));
}

// Chunk c (table row i) of one row for NT tokens, added into acc.
template <int NT, ValueKind VF>
inline void chunk(const Consts& k, const int8_t* const* aq, const Tables& T, uint32_t i, uint32_t c, __m512i off,
                  const uint8_t* vrow, __m512 wd, __m512 wm, __m512* acc) {
  const __m512i ones = _mm512_set1_epi8(1), zero = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  (void)k;
  if (VF == ValueKind::Q8) {
    const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(vrow + uint64_t(c) * 64), flip);  // w + 128
    for (int t = 0; t < NT; ++t) {
      const int8_t* x = aq[t] + uint64_t(c) * 128;
      const __m512i xa = _mm512_permutex2var_epi8(_mm512_loadu_si512(x), off, _mm512_loadu_si512(x + 64));
      const __m512i sa = _mm512_dpbusd_epi32(zero, flip, xa);  // 128 * sum of the picked inputs per lane
      const __m512i sq = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, wv, xa), sa);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sq), _mm512_mul_ps(wd, _mm512_load_ps(T.xs[t][i])), acc[t]);
    }
  } else {
    const __m512i wv = q4_codes(vrow + uint64_t(c) * 32);
    for (int t = 0; t < NT; ++t) {
      const int8_t* x = aq[t] + uint64_t(c) * 128;
      const __m512i xa = _mm512_permutex2var_epi8(_mm512_loadu_si512(x), off, _mm512_loadu_si512(x + 64));
      const __m512 sa = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, ones, xa));
      const __m512 sq = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, wv, xa));
      const __m512 part = _mm512_fmadd_ps(sa, wm, _mm512_mul_ps(sq, wd));
      acc[t] = _mm512_fmadd_ps(part, _mm512_load_ps(T.xs[t][i]), acc[t]);
    }
  }
}

// Quads for 2:4 (see the top of the file).
template <int B>
constexpr bool kQuads = B == 2;

// Quad q (table entry) of one row for NT tokens, added into acc. idx and
// val: the row's index bits and codes from the stripe's first chunk; dsc:
// its value scales (Q4: m[groups] after d[groups]). (Row pointers come in
// from the caller: worked out here, GCC reloads the plan after every vector
// store, which may alias it, and the quad ran 1.2x slower.)
template <int NT, ValueKind VF>
inline void quad(const QuadConsts& k, const Stripe& s, const Tables& T, uint32_t q, const uint8_t* idx,
                 const uint8_t* val, const uint16_t* dsc, __m512* acc) {
  const uint8_t* codes = val + uint64_t(q) * 4 * kChunkCodeBytes<VF>;
  idx += uint64_t(q) * 64;
  const __m512i gl = _mm512_load_si512(T.qgroup[q]);
  const __m512 wd = _mm512_permutexvar_ps(gl, load_scales(dsc + T.qbase[q], T.full, s.ng - T.qbase[q]));
  const __m512 wm = VF == ValueKind::Q4 ? _mm512_permutexvar_ps(gl, load_scales(dsc + s.ng + T.qbase[q], T.full, s.ng - T.qbase[q])) : wd;
  const __m512i ones = _mm512_set1_epi8(1), nib = _mm512_set1_epi8(15), two_bits = _mm512_set1_epi8(3);
  __m512i bits = _mm512_loadu_si512(idx), w[4];
  if (VF == ValueKind::Q8) {
    // In-lane 4x4 transpose: w[k] at position 4i + j <- dword 4i + k of codes vector j.
    const __m512i r0 = _mm512_loadu_si512(codes), r1 = _mm512_loadu_si512(codes + 64);
    const __m512i r2 = _mm512_loadu_si512(codes + 128), r3 = _mm512_loadu_si512(codes + 192);
    const __m512i t0 = _mm512_unpacklo_epi32(r0, r1), t1 = _mm512_unpackhi_epi32(r0, r1);
    const __m512i t2 = _mm512_unpacklo_epi32(r2, r3), t3 = _mm512_unpackhi_epi32(r2, r3);
    w[0] = _mm512_unpacklo_epi64(t0, t2), w[1] = _mm512_unpackhi_epi64(t0, t2);
    w[2] = _mm512_unpacklo_epi64(t1, t3), w[3] = _mm512_unpackhi_epi64(t1, t3);
    bits = _mm512_permutexvar_epi32(k.lane_sel, bits);
  } else {
    const __m512i c0 = _mm512_loadu_si512(codes), c1 = _mm512_loadu_si512(codes + 64);
    w[0] = _mm512_permutex2var_epi64(c0, k.code_sel[0], c1), w[2] = _mm512_permutex2var_epi64(c0, k.code_sel[1], c1);
  }
  __m512i sq[NT], sa[NT];
  for (int t = 0; t < NT; ++t) sq[t] = sa[t] = _mm512_setzero_si512();
  for (uint32_t step = 0; step < 4; ++step) {
    const __m512i off = _mm512_ternarylogic_epi32(_mm512_multishift_epi64_epi8(k.index_ctl[step], bits), two_bits, k.group_off, 0xEA);
    const __m512i wv = VF == ValueKind::Q8 ? w[step]
                                           : _mm512_and_si512(_mm512_multishift_epi64_epi8(k.code_ctl[step % 2], w[step & 2]), nib);
    for (int t = 0; t < NT; ++t) {
      const int8_t* x = T.xq[t][q] + step * 128;
      const __m512i xa = _mm512_permutex2var_epi8(_mm512_load_si512(x), off, _mm512_load_si512(x + 64));
      if (VF == ValueKind::Q8) {  // (x + 128) * w, and the sum of the weights
        sq[t] = _mm512_dpbusd_epi32(sq[t], xa, wv);
        sa[t] = _mm512_dpbusd_epi32(sa[t], ones, wv);
      } else {  // q * x, and the sum of the inputs (for m)
        sq[t] = _mm512_dpbusd_epi32(sq[t], wv, xa);
        sa[t] = _mm512_dpbusd_epi32(sa[t], ones, xa);
      }
    }
  }
  for (int t = 0; t < NT; ++t) {
    const __m512 xs = _mm512_load_ps(T.qxs[t][q]);
    if (VF == ValueKind::Q8) {
      const __m512i dot = _mm512_sub_epi32(sq[t], _mm512_slli_epi32(sa[t], 7));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(wd, xs), acc[t]);
    } else {
      const __m512 part = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sa[t]), wm, _mm512_mul_ps(_mm512_cvtepi32_ps(sq[t]), wd));
      acc[t] = _mm512_fmadd_ps(part, xs, acc[t]);
    }
  }
}

// B: index bits known at compile time (2 for 2:4, the pattern that matters
// most; 0: read from the plan).
template <int NT, ValueKind VF, int B>
void rows(const Plan& p, const Consts& k, const QuadConsts& qk, const Activations& a, uint32_t t0, const Stripe& s,
          const Tables& T, const Partial& part, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const uint32_t bits = B ? uint32_t(B) : p.L.bits;
  const uint32_t i0 = kQuads<B> ? s.n / 4 * 4 : 0;  // first chunk of the per-chunk loop
  const int8_t* aq[NT];
  for (int t = 0; t < NT; ++t) aq[t] = a.q8 + size_t(t0 + t) * a.ldq;
  for (uint32_t r = r0; r < r1; ++r) {
    const uint8_t* idx_row = p.index_row(r);
    const uint8_t* vrow = p.value_row(r);
    const uint16_t* srow = VF == ValueKind::Q8 ? p.q8_scales(r) : p.q4_scales(r);
    const uint16_t* mrow = srow + s.ng;  // Q4 only: m[groups] after d[groups]
    __m512 acc[NT], acc2[NT], accq[NT];  // even and odd chunks: two FMA chains; quads
    for (int t = 0; t < NT; ++t) acc[t] = acc2[t] = accq[t] = _mm512_setzero_ps();
    __m512 d16 = _mm512_setzero_ps(), m16 = _mm512_setzero_ps();
    for (uint32_t q = 0; q < i0 / 4; ++q) {
      quad<NT, VF>(qk, s, T, q, idx_row + uint64_t(s.c0) * 8 * bits, vrow + uint64_t(s.c0) * kChunkCodeBytes<VF>, srow, accq);
    }
    for (uint32_t i = i0; i < s.n; i += 2) {
      if (i % 8 == 0 || i == i0) {
        const uint32_t base = T.base[i / 8];
        d16 = load_scales(srow + base, T.full, s.ng - base);
        if (VF == ValueKind::Q4) m16 = load_scales(mrow + base, T.full, s.ng - base);
      }
      {
        const __m512i gl = _mm512_load_si512(T.group[i]);
        const __m512 wm = VF == ValueKind::Q4 ? _mm512_permutexvar_ps(gl, m16) : d16;
        chunk<NT, VF>(k, aq, T, i, s.c0 + i, offsets(k, idx_row, s.c0 + i, bits), vrow,
                      _mm512_permutexvar_ps(gl, d16), wm, acc);
      }
      if (i + 1 < s.n) {
        const __m512i gl = _mm512_load_si512(T.group[i + 1]);
        const __m512 wm = VF == ValueKind::Q4 ? _mm512_permutexvar_ps(gl, m16) : d16;
        chunk<NT, VF>(k, aq, T, i + 1, s.c0 + i + 1, offsets(k, idx_row, s.c0 + i + 1, bits), vrow,
                      _mm512_permutexvar_ps(gl, d16), wm, acc2);
      }
    }
    if (s.partial) {  // chunk s.n, into the sum of its parity as in decode_row
      const uint32_t i = s.n;
      if (i % 8 == 0 || i == i0) {  // this chunk's scales not loaded by the loop above
        const uint32_t base = T.base[i / 8];
        d16 = load_scales(srow + base, T.full, s.ng - base);
        if (VF == ValueKind::Q4) m16 = load_scales(mrow + base, T.full, s.ng - base);
      }
      alignas(64) uint8_t codes[64], index[32];
      part.load_row<VF>(p, r, codes, index);
      const __m512i gl = _mm512_load_si512(T.group[i]);
      const __m512 wm = VF == ValueKind::Q4 ? _mm512_permutexvar_ps(gl, m16) : d16;
      chunk<NT, VF>(k, part.xp, T, i, 0, offsets(k, index, 0, bits), codes, _mm512_permutexvar_ps(gl, d16), wm,
                    i % 2 ? acc2 : acc);
    }
    for (int t = 0; t < NT; ++t) {
      float* o = y + size_t(t0 + t) * ldy + r;
      const __m512 both = _mm512_add_ps(acc[t], acc2[t]);
      const float sum = _mm512_reduce_add_ps(kQuads<B> ? _mm512_add_ps(accq[t], both) : both);
      *o = s.c0 == 0 ? sum : *o + sum;
    }
  }
}

// Decode (one token), one row at a time. The row's value and index bytes are
// prefetched kPrefetchChunks chunks ahead (Q4: 4 KB of codes): without it a
// core streams this kernel's three planes (values, indices, scales) at
// ~0.85x the rate it streams dense Q4. (Several rows per pass would share
// the activation loads and is faster from L2, but interleaving the rows'
// streams is slower from L3 and DRAM, prefetched or not.) The arithmetic is
// chunk<1, VF>'s in the same order (even and odd chunks into separate sums),
// so the results are those of the tiled path, bit for bit.
template <ValueKind VF, int B>
void decode_row(const Plan& p, const Consts& k, const QuadConsts& qk, const int8_t* aq, const Stripe& s,
                const Tables& T, const Partial& part, float* y, uint32_t r) {
  const uint32_t bits = B ? uint32_t(B) : p.L.bits;
  const uint32_t ib = 8 * bits, vb = kChunkCodeBytes<VF>;  // index and value bytes per chunk
  const __m512i ones = _mm512_set1_epi8(1), zero = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  const uint8_t* idx = p.index_row(r) + uint64_t(s.c0) * ib;
  const uint8_t* val = p.value_row(r) + uint64_t(s.c0) * vb;
  const uint16_t* dsc = VF == ValueKind::Q8 ? p.q8_scales(r) : p.q4_scales(r);
  const int8_t* x = aq + uint64_t(s.c0) * 128;
  if (s.c0 == 0 && r + kSideRowsAhead < p.v.rows) {  // a row's value scales, once (prefetch_x86.h)
    prefetch_span(VF == ValueKind::Q8 ? p.q8_scales(r + kSideRowsAhead) : p.q4_scales(r + kSideRowsAhead),
                  VF == ValueKind::Q8 ? uint64_t(s.ng) * 2 : p.LB.row_scale_bytes);
  }
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()}, d16 = _mm512_setzero_ps(), m16 = d16;
  // Chunk i (table entry i) with its inputs at xc, codes at vc and input offsets off.
  const auto step_at = [&](uint32_t i, int u, const int8_t* xc, const uint8_t* vc, __m512i off) __attribute__((always_inline)) {
    const __m512i gl = _mm512_load_si512(T.group[i]);
    const __m512 xs = _mm512_load_ps(T.xs[0][i]);
    const __m512i xa = _mm512_permutex2var_epi8(_mm512_loadu_si512(xc), off, _mm512_loadu_si512(xc + 64));
    const __m512 wd = _mm512_permutexvar_ps(gl, d16);
    if (VF == ValueKind::Q8) {
      const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(vc), flip);  // w + 128
      const __m512i sa = _mm512_dpbusd_epi32(zero, flip, xa);
      const __m512i sq = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, wv, xa), sa);
      acc[u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sq), _mm512_mul_ps(wd, xs), acc[u]);
    } else {
      const __m512 wm = _mm512_permutexvar_ps(gl, m16);
      const __m512i wv = q4_codes(vc);
      const __m512 sa = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, ones, xa));
      const __m512 sq = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, wv, xa));
      acc[u] = _mm512_fmadd_ps(_mm512_fmadd_ps(sa, wm, _mm512_mul_ps(sq, wd)), xs, acc[u]);
    }
  };
  const auto step = [&](uint32_t i, int u) __attribute__((always_inline)) {
    // Past the row's end these fetch the next rows' bytes, which come next
    // (prefetches never fault).
    if (VF == ValueKind::Q8 || u == 0) _mm_prefetch(reinterpret_cast<const char*>(val + uint64_t(i + kPrefetchChunks) * vb), _MM_HINT_T0);
    if (u == 0) _mm_prefetch(reinterpret_cast<const char*>(idx + uint64_t(i + kPrefetchChunks) * ib), _MM_HINT_T0);
    step_at(i, u, x + uint64_t(i) * 128, val + uint64_t(i) * vb, offsets(k, idx, i, bits));
  };
  __m512 accq = _mm512_setzero_ps();
  const uint32_t i0 = kQuads<B> ? s.n / 4 * 4 : 0;  // first chunk of the per-chunk loop
  for (uint32_t q = 0; q < i0 / 4; ++q) {
    // Past the row's end these fetch the next rows' bytes (see step).
    const uint8_t* ahead = val + uint64_t(q * 4 + kPrefetchChunks) * vb;
    for (uint32_t o = 0; o < 4 * vb; o += 64) _mm_prefetch(reinterpret_cast<const char*>(ahead + o), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(idx + uint64_t(q * 4 + kPrefetchChunks) * ib), _MM_HINT_T0);
    quad<1, VF>(qk, s, T, q, idx, val, dsc, &accq);
  }
  for (uint32_t i = i0; i < s.n;) {
    const uint32_t base = T.base[i / 8], end = s.n < (i / 8 + 1) * 8 ? s.n : (i / 8 + 1) * 8;
    d16 = load_scales(dsc + base, T.full, s.ng - base);
    if (VF == ValueKind::Q4) m16 = load_scales(dsc + s.ng + base, T.full, s.ng - base);  // m[groups] after d[groups]
    for (; i + 1 < end; i += 2) {
      step(i, 0);
      step(i + 1, 1);
    }
    if (i < end) step(i++, 0);
  }
  if (s.partial) {  // chunk s.n, into the sum of its parity as in rows()
    const uint32_t i = s.n;
    if (i % 8 == 0 || i == i0) {  // this chunk's scales not loaded by the loop above
      const uint32_t base = T.base[i / 8];
      d16 = load_scales(dsc + base, T.full, s.ng - base);
      if (VF == ValueKind::Q4) m16 = load_scales(dsc + s.ng + base, T.full, s.ng - base);
    }
    alignas(64) uint8_t codes[64], index[32];
    part.load_row<VF>(p, r, codes, index);
    step_at(i, int(i % 2), part.xp[0], codes, offsets(k, index, 0, bits));
  }
  const __m512 both = _mm512_add_ps(acc[0], acc[1]);
  const float sum = _mm512_reduce_add_ps(kQuads<B> ? _mm512_add_ps(accq, both) : both);
  y[r] = s.c0 == 0 ? sum : y[r] + sum;
}

// One call per chunk of rows (forward.cpp: 8 chunks per thread), about 1800
// calls per TinyLlama token, so the per-call setup counts: with the controls
// built in a loop and the step-order copy made 8 bytes at a time it took
// 0.29 us at 2048 inputs (dense Q8's whole call: 0.06 us); with compile-time
// controls, a vector copy and per-chunk tables only where they are read,
// 0.09 us (one row per call, in cache, AMD Zen 5).
template <ValueKind VF, int B>
void run(const Plan& p, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const Consts k = load_consts(p);
  const QuadConsts qk = kQuads<B> ? load_quad_consts() : QuadConsts{};  // only quads use them
  const uint32_t chunks = p.L.kept_full / 64;
  Stripe s;
  s.vgroup = VF == ValueKind::Q8 ? kQ8Group : p.LB.group;
  s.ng = VF == ValueKind::Q8 ? q8_groups_per_row(p.L.kept) : p.LB.groups_per_row;
  const uint32_t P = p.L.kept_full - chunks * 64;
  Tables T;
  Partial part;
  // Tiles of four tokens, the last < 4 one by one (fewer instantiations; each
  // token's sums are the same either way).
  for (uint32_t t0 = 0, nt; t0 < a.n; t0 += nt) {
    nt = a.n - t0 >= uint32_t(kTile) ? uint32_t(kTile) : 1;
    if (P > 0) part.init<VF>(p, a, t0, nt, chunks, P);
    for (s.c0 = 0; s.c0 < chunks || s.c0 == 0; s.c0 += kStripeChunks) {
      s.n = chunks - s.c0 < kStripeChunks ? chunks - s.c0 : kStripeChunks;
      s.partial = P > 0 && s.c0 + s.n == chunks;
      make_tables(p, a, t0, nt, s, kQuads<B>, &T);
      if (nt == 1) {
        for (uint32_t r = r0; r < r1; ++r) decode_row<VF, B>(p, k, qk, a.q8 + size_t(t0) * a.ldq, s, T, part, y + size_t(t0) * ldy, r);
      } else {
        rows<kTile, VF, B>(p, k, qk, a, t0, s, T, part, y, ldy, r0, r1);
      }
      if (chunks == 0) break;
    }
    add_scalar_rest(p, a, p.L.kept_full, t0, nt, y, ldy, r0, r1);
  }
}

}  // namespace

void matmul_sparse_vnni(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  Plan p;
  if (!int8_half_pattern(w, a, &p)) {
    matmul_sparse_avx512(w, a, y, ldy, r0, r1);
    return;
  }
  const bool two_four = p.L.bits == 2;
  if (p.vf == ValueKind::Q8) {
    two_four ? run<ValueKind::Q8, 2>(p, a, y, ldy, r0, r1) : run<ValueKind::Q8, 0>(p, a, y, ldy, r0, r1);
  } else {
    two_four ? run<ValueKind::Q4, 2>(p, a, y, ldy, r0, r1) : run<ValueKind::Q4, 0>(p, a, y, ldy, r0, r1);
  }
}

}  // namespace stk
