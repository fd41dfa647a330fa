// AVX2 kernel for N:M sparse weights whose kept values are integers (Q8, Q4)
// and whose pattern keeps half of each group (1:2, 2:4, 4:8, 8:16): integer
// dot products with the int8 copy of the activations that the kernel table
// asks for (groups of 32 inputs, one float scale each), as sparse_vnni.cpp
// does with AVX-512. The float kernel (sparse_avx2.cpp) picks 8 inputs per
// vpermps and multiplies in float, which made 2:4-q8 decode compute-bound at
// a third of dense Q8's speed although it reads two thirds of the bytes.
//
// With N = M/2 and M <= 16, kept values 8i .. 8i+7 of a row always come from
// inputs 16i .. 16i+15 (each 16 inputs hold 16/M whole groups of N kept). A
// chunk is 32 kept values = 64 inputs = two activation groups:
//   - its inputs are two 32-byte loads A0 (inputs 0-31) and A1 (32-63); one
//     in-lane vpshufb on each with the chunk's control bytes (offsets inside
//     the 16-byte lane) and a vpblendd give the 32 picked inputs in the order
//     [low lane: kept 0-7, 16-23 | high lane: kept 8-15, 24-31];
//   - the kept values are put in that order once per chunk: Q8 with one
//     vpermq, Q4 (one 16-byte code block) with vpermq + vpsrlvq;
//   - Q8 multiplies as avx2.cpp's Q8 kernel does (vpmaddubsw on |w| and a
//     with w's sign, vpmaddwd); Q4 takes vpmaddubsw(q, a) plus m times the
//     sum of the picked inputs (vpmaddubsw with ones);
//   - int32 lanes 0,1,4,5 then belong to the chunk's first activation group
//     and lanes 2,3,6,7 to its second; a chunk lies inside one value group
//     (Q8 groups are 32 kept values, Q4 groups multiples of 32), so one float
//     vector, d * [xs0 xs0 xs1 xs1 xs0 xs0 xs1 xs1], scales it.
// Control bytes: kept value k's b index bits sit at bit k*b of the chunk's 4b
// index bytes. One vpshufb (b = 3: two, for fields that straddle a byte)
// puts in each 16-bit word the index byte of its odd output (low byte) and of
// its even output (high byte); vpmullw by 2^(8 - shift) lifts the odd field
// to bit 8, vpmulhuw by 2^(8 - shift) brings the even field down to bit 0;
// masked and OR'ed with the group offsets ((k % 8) / N) * M, every control
// byte is below 16 whatever the index bits hold, so malformed indices pick
// inputs of the same 16 and never read outside the row.
//
// As in sparse_vnni.cpp: only full loads (chunks lie inside the row's full
// groups), stripes of kStripeChunks chunks so the per-call activation scale
// table has a fixed size, up to four tokens share each decoded chunk, decode
// (one token) prefetches values and indices ahead and each row's scales two
// rows ahead, one token's sums are made by the same instructions in the tiled
// and single-token paths (results do not depend on the batch or on the row
// split). The kept values of full groups after the last full chunk make one
// more, zero-padded chunk (Partial); those of a last group shorter than M go
// through the scalar loop of sparse_x86_common.h with the float activations
// (a.x is always given).
// Other patterns and value formats go to the float kernel (sparse_avx2.cpp).
// Compiled with -mavx2 -mfma -mf16c; only called after run-time detection.
#include <immintrin.h>

#include <cstring>

#include "runtime/kernels/avx2_hsum.h"
#include "runtime/kernels/prefetch_x86.h"
#include "runtime/kernels/sparse_x86_common.h"

namespace stk {
namespace {

using namespace sparse_x86;

constexpr uint32_t kStripeChunks = 128;  // 8192 inputs
constexpr int kTile = 4;

// Kept value (within the chunk) that byte j (0..31) of a picked vector holds.
inline uint32_t kept_of_byte(uint32_t j) { return (j % 16 < 8 ? 0 : 16) + (j / 16) * 8 + j % 8; }

struct Consts {
  __m256i ctl_o, ctl_e;  // vpshufb controls: word w <- index bytes (ctl_e only for b = 3)
  __m256i mul_o, mul_e;  // per word: vpmullw / vpmulhuw factors
  __m256i mask_o, mask_e;
  __m256i group_off;  // byte j: ((kept % 8) / N) * M, low b bits zero
};

Consts make_consts(const Plan& p) {
  const uint32_t b = p.L.bits, field = (1u << b) - 1u;
  const bool two = b == 3;
  alignas(32) uint8_t co[32], ce[32], off[32];
  alignas(32) uint16_t mo[16], me[16], ko[16], ke[16];
  for (uint32_t w = 0; w < 16; ++w) {
    const uint32_t je = 2 * w, jo = 2 * w + 1;
    const uint32_t bit_e = kept_of_byte(je) * b, bit_o = kept_of_byte(jo) * b;
    const uint32_t src_e = bit_e / 8, se = bit_e % 8, src_o = bit_o / 8, so = bit_o % 8;
    // Odd output: its index byte is the word's low byte (b = 3: with the
    // next byte above it, for fields that straddle two bytes); x 2^(8 - so)
    // moves the field to bits 8 .. 8+b-1 and every bit above it in the word
    // above those or out of the word.
    co[je] = uint8_t(src_o);
    co[jo] = uint8_t(two ? src_o + 1 : src_e);
    mo[w] = uint16_t(1u << (8 - so));
    // Even output: its index byte is the word's high byte, and the high half
    // of word x 2^(8 - se) is that byte >> se (what the low byte adds never
    // carries into it). b = 3 fields that straddle two bytes have both in the
    // word and take the high half of word x 2^(16 - se), se >= 6.
    const bool straddle = se + b > 8;
    ce[je] = uint8_t(straddle ? src_e : src_e == 0 ? 0x80 : src_e - 1);
    ce[jo] = uint8_t(straddle ? src_e + 1 : src_e);
    me[w] = uint16_t(straddle ? 1u << (16 - se) : 1u << (8 - se));
    ko[w] = uint16_t(field << 8);
    ke[w] = uint16_t(field);
    off[je] = uint8_t((je % 8 / p.L.n) * p.L.m);
    off[jo] = uint8_t((jo % 8 / p.L.n) * p.L.m);
  }
  Consts c;
  c.ctl_o = _mm256_load_si256(reinterpret_cast<const __m256i*>(co));
  c.ctl_e = _mm256_load_si256(reinterpret_cast<const __m256i*>(ce));
  c.mul_o = _mm256_load_si256(reinterpret_cast<const __m256i*>(mo));
  c.mul_e = _mm256_load_si256(reinterpret_cast<const __m256i*>(me));
  c.mask_o = _mm256_load_si256(reinterpret_cast<const __m256i*>(ko));
  c.mask_e = _mm256_load_si256(reinterpret_cast<const __m256i*>(ke));
  c.group_off = _mm256_load_si256(reinterpret_cast<const __m256i*>(off));
  return c;
}

// The chunk's 4*b index bytes in every 16-byte lane (b = 3: 12 of the 16
// loaded; the index plane's 8 padding bytes keep the load inside the tensor).
inline __m256i load_index(const uint8_t* p, uint32_t bits) {
  if (bits == 1) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  if (bits == 2) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return _mm256_set1_epi64x(v);
  }
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// vpshufb control bytes (0..15) of the chunk whose index bytes start at p,
// in picked order.
inline __m256i control(const Consts& k, const uint8_t* p, uint32_t bits) {
  const __m256i r = load_index(p, bits);
  const __m256i wo = _mm256_shuffle_epi8(r, k.ctl_o);
  const __m256i we = bits == 3 ? _mm256_shuffle_epi8(r, k.ctl_e) : wo;
  const __m256i lo = _mm256_and_si256(_mm256_mullo_epi16(wo, k.mul_o), k.mask_o);
  const __m256i hi = _mm256_and_si256(_mm256_mulhi_epu16(we, k.mul_e), k.mask_e);
  return _mm256_or_si256(_mm256_or_si256(lo, hi), k.group_off);
}

// The 32 picked int8 inputs of a chunk starting at x (64 inputs).
inline __m256i pick(const int8_t* x, __m256i ctl) {
  const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32));
  return _mm256_blend_epi32(_mm256_shuffle_epi8(a0, ctl), _mm256_shuffle_epi8(a1, ctl), 0xCC);
}

// Q8: the chunk's 32 values in picked order.
inline __m256i q8_values(const uint8_t* v) {
  return _mm256_permute4x64_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v)), 0xD8);
}

// Q4: the chunk's code block (low nibbles kept 0-15, high nibbles 16-31) as
// 32 codes in picked order.
inline __m256i q4_codes(const uint8_t* blk) {
  const __m256i q = _mm256_permute4x64_epi64(
      _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk))), 0x50);  // qwords 0 0 1 1
  return _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_setr_epi64x(0, 4, 0, 4)), _mm256_set1_epi8(15));
}

struct Stripe {
  uint32_t c0, n;       // first chunk, chunks
  uint32_t vgroup, ng;  // kept values per value group, value groups per row
  uint32_t partial;     // 1: the row's partial chunk follows as chunk c0 + n (last stripe only)
};

// Per stripe: each chunk's value group, and per token each chunk's lane
// scales [xs0 xs0 xs1 xs1 xs0 xs0 xs1 xs1]; one more entry for the partial
// chunk.
struct Tables {
  alignas(32) float xs[kTile][kStripeChunks + 1][8];
  uint32_t group[kStripeChunks + 1];
};

// The P < 32 kept values of full groups after a row's last full chunk (on
// the stories15M shape's 288-input rows, 16 of 144 under 2:4) are one more
// chunk: its inputs (2P per token, once per call) and each row's codes and
// index bits are copied into zero-padded chunk-sized buffers, and
// token_chunk() runs on those unchanged, into the row's own sums, reading
// nothing past the row. The padding adds nothing: a padded Q8 code is 0, and
// a padded lane's control byte picks an input at or past 2P, which is 0. (A
// scalar loop over these values in float was most of the 2:4 decode step on
// that shape.)
struct Partial {
  uint32_t c = 0;  // chunk index
  uint32_t code_bytes = 0, index_bytes = 0;
  alignas(32) int8_t x[kTile][64];
  const int8_t* xp[kTile];

  template <ValueKind VF>
  void init(const Plan& p, const Activations& a, uint32_t t0, uint32_t nt, uint32_t chunk_index, uint32_t P) {
    c = chunk_index;
    code_bytes = VF == ValueKind::Q8 ? P : 16;  // Q4: the chunk's one code block
    index_bytes = (P * p.L.bits + 7) / 8;
    copy_padded_inputs(a, t0, nt, uint64_t(c) * 64, 2 * P, 64, &x[0][0], xp);
  }
  // Row r's codes and index bits into buffers whose other bytes stay zero.
  template <ValueKind VF>
  void load_row(const Plan& p, uint32_t r, uint8_t* codes, uint8_t* index) const {
    std::memcpy(codes, p.value_row(r) + uint64_t(c) * (VF == ValueKind::Q8 ? 32 : 16), code_bytes);
    std::memcpy(index, p.index_row(r) + uint64_t(c) * 4 * p.L.bits, index_bytes);
  }
};

void make_tables(const Activations& a, uint32_t cols, uint32_t t0, uint32_t nt, const Stripe& s, Tables* T) {
  const uint32_t act_groups = (cols + 31) / 32;
  for (uint32_t i = 0; i < s.n + s.partial; ++i) {
    const uint32_t c = s.c0 + i;
    T->group[i] = c * 32 / s.vgroup;
    for (uint32_t t = 0; t < nt; ++t) {
      const float* xs = a.q8_scales + size_t(t0 + t) * act_groups + 2 * c;
      // Two activation groups per chunk; the partial chunk may have one.
      const __m128 two = 2 * c + 1 < act_groups ? _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(xs)))
                                                 : _mm_load_ss(xs);
      const __m128 q = _mm_shuffle_ps(two, two, 0x50);  // xs0 xs0 xs1 xs1
      _mm256_store_ps(T->xs[t][i], _mm256_set_m128(q, q));
    }
  }
}

inline __m256 load_halves(const uint16_t* p, uint32_t avail) {
  if (avail >= 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(tmp, p, avail * 2);
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tmp)));
}

// One token's share of a chunk, added into acc: the same instructions in the
// tiled and the single-token paths.
template <ValueKind VF>
inline __m256 token_chunk(const int8_t* x, __m256i ctl, __m256i w, __m256i wabs, __m256 wd, __m256 wm, const float* xs,
                          __m256 acc) {
  const __m256i ones16 = _mm256_set1_epi16(1);
  const __m256i pk = pick(x, ctl);
  if (VF == ValueKind::Q8) {
    const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(pk, w)), ones16);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(wd, _mm256_load_ps(xs)), acc);
  }
  (void)wabs;
  const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(w, pk), ones16);
  const __m256i sum = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), pk), ones16);
  const __m256 part = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), wm, _mm256_mul_ps(_mm256_cvtepi32_ps(dot), wd));
  return _mm256_fmadd_ps(part, _mm256_load_ps(xs), acc);
}

// Rows r0 .. r1 of stripe s for NT tokens (1: decode, with prefetch), in
// blocks of 8 chunks: a block spans at most 8 value groups, whose scales are
// converted once per block and read back per chunk as a broadcast load.
// B: index bits known at compile time (2 for 2:4; 0: read from the plan).
template <int NT, ValueKind VF, int B>
void rows(const Plan& p, const Consts& k, const int8_t* const* aq, const Stripe& s, const Tables& T,
          const Partial& part, float* const* yt, uint32_t r0, uint32_t r1) {
  const uint32_t bits = B ? uint32_t(B) : p.L.bits;
  const uint32_t ib = 4 * bits, vb = VF == ValueKind::Q8 ? 32 : 16;  // index and value bytes per chunk
  alignas(32) float wd8[8], wm8[8];
  alignas(32) uint8_t codes[32] = {}, index[16] = {};  // the partial chunk's, zero-padded
  for (uint32_t r = r0; r < r1; ++r) {
    const uint8_t* idx = p.index_row(r);
    const uint8_t* val = p.value_row(r);
    const uint16_t* dsc = VF == ValueKind::Q8 ? p.q8_scales(r) : p.q4_scales(r);
    const uint16_t* msc = dsc + s.ng;  // Q4: m[groups] after d[groups]
    if (NT == 1 && s.c0 == 0 && r + kSideRowsAhead < p.v.rows) {  // a row's scales, once (prefetch_x86.h)
      prefetch_span(VF == ValueKind::Q8 ? p.q8_scales(r + kSideRowsAhead) : p.q4_scales(r + kSideRowsAhead),
                    VF == ValueKind::Q8 ? uint64_t(s.ng) * 2 : p.LB.row_scale_bytes);
    }
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (uint32_t i8 = 0; i8 < s.n; i8 += 8) {
      const uint64_t c8 = s.c0 + i8;
      const uint8_t* idx8 = idx + c8 * ib;
      const uint8_t* val8 = val + c8 * vb;
      const int8_t* x8[NT];
      for (int t = 0; t < NT; ++t) x8[t] = aq[t] + c8 * 64;
      const uint32_t base = T.group[i8];
      _mm256_store_ps(wd8, load_halves(dsc + base, s.ng - base));
      if (VF == ValueKind::Q4) _mm256_store_ps(wm8, load_halves(msc + base, s.ng - base));
      const auto step = [&](uint32_t j) __attribute__((always_inline)) {
        if (NT == 1) {  // decode: values and indices kStreamAhead value bytes ahead, one line at a time (past the
                        // row's end these are the next rows' bytes); 8 * ib <= 128 index bytes per block
          if (j % (64 / vb) == 0) _mm_prefetch(reinterpret_cast<const char*>(val8 + j * vb + kStreamAhead), _MM_HINT_T0);
          if (j == 0 || (j == 4 && ib > 8)) {
            _mm_prefetch(reinterpret_cast<const char*>(idx8 + (j + kStreamAhead / vb) * ib), _MM_HINT_T0);
          }
        }
        const uint32_t g = VF == ValueKind::Q8 ? j : T.group[i8 + j] - base;  // Q8: one group per chunk
        const __m256 wd = _mm256_broadcast_ss(wd8 + g);
        const __m256 wm = VF == ValueKind::Q4 ? _mm256_broadcast_ss(wm8 + g) : wd;
        const __m256i ctl = control(k, idx8 + j * ib, bits);
        __m256i w, wabs;
        if (VF == ValueKind::Q8) {
          w = q8_values(val8 + j * vb);
          wabs = _mm256_abs_epi8(w);
        } else {
          w = q4_codes(val8 + j * vb);
          wabs = w;
        }
        for (int t = 0; t < NT; ++t) {
          acc[t] = token_chunk<VF>(x8[t] + j * 64, ctl, w, wabs, wd, wm, T.xs[t][i8 + j], acc[t]);
        }
      };
      if (NT == 1 && s.n - i8 >= 8) {  // decode: unrolled (the four-token tile would run out of registers)
#pragma GCC unroll 8
        for (uint32_t j = 0; j < 8; ++j) step(j);
      } else {
        for (uint32_t j = 0, n = s.n - i8 < 8 ? s.n - i8 : 8; j < n; ++j) step(j);
      }
    }
    if (s.partial) {  // chunk s.n
      part.load_row<VF>(p, r, codes, index);
      const uint32_t g = T.group[s.n];
      const __m256 wd = _mm256_set1_ps(half_to_float(dsc[g]));
      const __m256 wm = VF == ValueKind::Q4 ? _mm256_set1_ps(half_to_float(msc[g])) : wd;
      const __m256i ctl = control(k, index, bits);
      const __m256i w = VF == ValueKind::Q8 ? q8_values(codes) : q4_codes(codes);
      const __m256i wabs = VF == ValueKind::Q8 ? _mm256_abs_epi8(w) : w;
      for (int t = 0; t < NT; ++t) acc[t] = token_chunk<VF>(part.xp[t], ctl, w, wabs, wd, wm, T.xs[t][s.n], acc[t]);
    }
    for (int t = 0; t < NT; ++t) {
      const float sum = hsum256(acc[t]);
      yt[t][r] = s.c0 == 0 ? sum : yt[t][r] + sum;
    }
  }
}

template <ValueKind VF, int B>
void run(const Plan& p, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const Consts k = make_consts(p);
  const uint32_t chunks = p.L.kept_full / 32;
  Stripe s;
  s.vgroup = VF == ValueKind::Q8 ? kQ8Group : p.LB.group;
  s.ng = VF == ValueKind::Q8 ? q8_groups_per_row(p.L.kept) : p.LB.groups_per_row;
  const uint32_t P = p.L.kept_full - chunks * 32;
  Tables T;
  Partial part;
  // Tiles of four tokens, the last < 4 one by one (each token's sums are the
  // same either way).
  for (uint32_t t0 = 0, nt; t0 < a.n; t0 += nt) {
    nt = a.n - t0 >= uint32_t(kTile) ? uint32_t(kTile) : 1;
    const int8_t* aq[kTile];
    float* yt[kTile];
    for (uint32_t t = 0; t < nt; ++t) aq[t] = a.q8 + size_t(t0 + t) * a.ldq, yt[t] = y + size_t(t0 + t) * ldy;
    if (P > 0) part.init<VF>(p, a, t0, nt, chunks, P);
    for (s.c0 = 0; s.c0 < chunks || s.c0 == 0; s.c0 += kStripeChunks) {
      s.n = chunks - s.c0 < kStripeChunks ? chunks - s.c0 : kStripeChunks;
      s.partial = P > 0 && s.c0 + s.n == chunks;
      make_tables(a, p.cols, t0, nt, s, &T);
      if (nt == 1) {
        rows<1, VF, B>(p, k, aq, s, T, part, yt, r0, r1);
      } else {
        rows<kTile, VF, B>(p, k, aq, s, T, part, yt, r0, r1);
      }
      if (chunks == 0) break;
    }
    add_scalar_rest(p, a, p.L.kept_full, t0, nt, y, ldy, r0, r1);
  }
}

}  // namespace

void matmul_sparse_avx2_int8(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                             uint32_t r1) {
  Plan p;
  if (!int8_half_pattern(w, a, &p)) {
    matmul_sparse_avx2(w, a, y, ldy, r0, r1);
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
