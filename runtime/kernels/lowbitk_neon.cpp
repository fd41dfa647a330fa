// NEON kernels for the quantized-group-scale formats Q4K, Q3K, Q2K, T2K
// (runtime/lowbit.h, docs/format.md §8.3), AArch64 and ARMv7-A. Like
// matmul_lowbitk_scalar they form, per 16-block and token, the exact integer
//
//   v = 2^(8-b) * sum_j q_j a_j - z * sum_j a_j        (T2K: sum_j (q_j - 1) a_j)
//
// and add xs * d * v in float, so only the float summation order differs
// from the scalar kernel. The zero z (0..255) does not fit the int8 weights
// of a dot product, so it is split as z = 2^(8-b) * zh + zl: then
//
//   v = 2^(8-b) * sum_j (q_j - zh) a_j  +  sum_j (-zl) a_j
//
// with both q - zh and -zl in int8 (|q - zh| < 2^b, 0 <= zl < 2^(8-b)).
// The subtraction happens once per decoded block, shared by up to four
// tokens (two on ARMv7), and the offset needs no activation sums prepared
// per call (so no buffers and no column stripes). The dot products are
// `sdot` when compiled for the dot-product extension (cmake
// -DSTK_ARM_DOTPROD=ON), otherwise vmull_s8/vmlal_s8 + vpaddl/vpadal.
#if defined(__ARM_NEON)
#include <arm_neon.h>

#include <cstring>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/neon_common.h"
#include "runtime/lowbit.h"

namespace stk {
namespace lowbitk_neon {
namespace {

using neon::hsum;
using neon::mla_n;

// Tokens that share each decoded block (batched prefill). ARMv7 has 16 q
// registers: with four tokens their eight accumulators go to the stack.
#if defined(__aarch64__)
constexpr uint32_t kTokens = 4;
#else
constexpr uint32_t kTokens = 2;
#endif

// Codes 0..15 of one 16-block, one byte each. Reads exactly the block's
// Bits * 2 bytes (the last block of the last row may end the code plane).
template <int Bits>
inline uint8x16_t decode(const uint8_t* p) {
  if constexpr (Bits == 4) {  // byte j % 8: low nibble for j < 8, high nibble otherwise
    const uint8x8_t v = vld1_u8(p);
    return vcombine_u8(vand_u8(v, vdup_n_u8(15)), vshr_n_u8(v, 4));
  } else {  // byte j % 4, bits 2 * (j / 4): four copies of the word, each shifted right by 0, 2, 4, 6
    static const int8_t kShift[16] = {0, 0, 0, 0, -2, -2, -2, -2, -4, -4, -4, -4, -6, -6, -6, -6};
    uint32_t word;
    std::memcpy(&word, p, 4);
    uint8x16_t q = vandq_u8(vshlq_u8(vreinterpretq_u8_u32(vdupq_n_u32(word)), vld1q_s8(kShift)), vdupq_n_u8(3));
    if constexpr (Bits == 3) {  // bit 2 of code j: bit j % 8 of byte 4 + j / 8
      static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
      const uint8x16_t hi = vcombine_u8(vdup_n_u8(p[4]), vdup_n_u8(p[5]));
      q = vorrq_u8(q, vandq_u8(vtstq_u8(hi, vld1q_u8(kBit)), vdupq_n_u8(4)));
    }
    return q;
  }
}

// -zl in the shape the dot product below wants it.
#if defined(__ARM_FEATURE_DOTPROD)
using ZeroLow = int8x16_t;
inline ZeroLow zero_low(int32_t nzl) { return vdupq_n_s8(int8_t(nzl)); }
#else
using ZeroLow = int16x8_t;
inline ZeroLow zero_low(int32_t nzl) { return vdupq_n_s16(int16_t(nzl)); }
#endif

// One group's scale and zero, decoded once per row and group.
struct Group {
  float d;         // lowbitk_scale * 2^(bits-8) (T2K: * 1), as the scalar kernel
  uint8x16_t zh;   // subtracted from the codes (T2K: 1)
  ZeroLow nzl;     // -zl (unused for T2K)
};

template <int Bits, bool Ternary>
inline Group load_group(const LowbitKLayout& L, const uint8_t* sc, uint32_t g) {
  constexpr float kUnit = Ternary ? 1.0f : float(1u << Bits) / 256.0f;  // exact
  Group gr;
  gr.d = lowbitk_scale(L.scale, L.shift, sc[g]) * kUnit;
  if constexpr (Ternary) {
    gr.zh = vdupq_n_u8(1);
    gr.nzl = zero_low(0);
  } else {
    const uint32_t z = sc[L.groups_per_row + g];
    gr.zh = vdupq_n_u8(uint8_t(z >> (8 - Bits)));
    gr.nzl = zero_low(-int32_t(z & ((1u << (8 - Bits)) - 1u)));
  }
  return gr;
}

// Four int32 lanes that add up to v (see the top of the file) for one block
// and token. Reads the block's 16 activations: the int8 copy is zero-padded
// to whole 16-blocks, as the scalar kernel assumes. Exact on both paths: on
// the vmull one an int16 lane holds two products of at most 15 * 128, or
// 63 * (a_i + a_j) with |a_i + a_j| <= 256.
template <int Bits, bool Ternary>
inline int32x4_t block_dot(int8x16_t wq, ZeroLow nzl, const int8_t* a) {
  const int8x16_t av = vld1q_s8(a);
#if defined(__ARM_FEATURE_DOTPROD)
  int32x4_t v = vdotq_s32(vdupq_n_s32(0), wq, av);
  if constexpr (!Ternary) v = vdotq_s32(vshlq_n_s32(v, 8 - Bits), nzl, av);
  return v;
#else
  int16x8_t p = vmull_s8(vget_low_s8(wq), vget_low_s8(av));
  p = vmlal_s8(p, vget_high_s8(wq), vget_high_s8(av));
  int32x4_t v = vpaddlq_s16(p);
  if constexpr (!Ternary) {
    const int16x8_t s = vaddl_s8(vget_low_s8(av), vget_high_s8(av));
    v = vpadalq_s16(vshlq_n_s32(v, 8 - Bits), vmulq_s16(s, nzl));
  }
  return v;
#endif
}

// Rows r0..r1 for NT tokens. Each (row, token) is computed by the same
// instruction sequence whatever NT and the row range are: blocks alternate
// between two accumulators (even, odd), combined once at the end of the row.
template <int Bits, bool Ternary, int NT>
void rows_tile(const WeightView& w, const LowbitKLayout& L, const int8_t* const* aq, const float* const* as,
               float* const* yt, uint32_t r0, uint32_t r1) {
  const uint32_t bpg = L.group / kLowbitKBlock, nb = L.blocks_per_row;
  constexpr uint32_t kBlockBytes = Bits * 2;
  for (uint32_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.data + uint64_t(r) * L.row_code_bytes;
    const uint8_t* sc = w.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes;  // e[ng], then z[ng]
    float32x4_t even[NT], odd[NT];
    for (int t = 0; t < NT; ++t) even[t] = odd[t] = vdupq_n_f32(0.0f);
    Group gr{};
    uint32_t g = 0, group_end = 0;  // the first block loads group 0
    const auto step = [&](uint32_t b, float32x4_t* acc) {
      if (b == group_end) {
        gr = load_group<Bits, Ternary>(L, sc, g);
        ++g;
        group_end += bpg;
      }
      const int8x16_t wq = vreinterpretq_s8_u8(vsubq_u8(decode<Bits>(codes + uint64_t(b) * kBlockBytes), gr.zh));
      for (int t = 0; t < NT; ++t) {
        const int32x4_t v = block_dot<Bits, Ternary>(wq, gr.nzl, aq[t] + size_t(b) * kLowbitKBlock);
        acc[t] = mla_n(acc[t], vcvtq_f32_s32(v), as[t][b / 2] * gr.d);
      }
    };
    uint32_t b = 0;
    for (; b + 2 <= nb; b += 2) {
      step(b, even);
      step(b + 1, odd);
    }
    if (b < nb) step(b, even);
    for (int t = 0; t < NT; ++t) yt[t][r] = hsum(vaddq_f32(even[t], odd[t]));
  }
}

template <int Bits, bool Ternary>
void kernel(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  LowbitKLayout L;
  if (!lowbitk_layout(w.format, w.rows, w.cols, w.params, &L)) return;  // model_open validated it
  const uint32_t act_groups = (w.cols + 31) / 32;
  // kTokens at a time, then the rest one by one: two instantiations per
  // format keep the code small.
  for (uint32_t t0 = 0, nt = 0; t0 < a.n; t0 += nt) {
    nt = a.n - t0 >= kTokens ? kTokens : 1;
    const int8_t* aq[kTokens] = {};
    const float* as[kTokens] = {};
    float* yt[kTokens] = {};
    for (uint32_t i = 0; i < nt; ++i) {
      aq[i] = a.q8 + size_t(t0 + i) * a.ldq;
      as[i] = a.q8_scales + size_t(t0 + i) * act_groups;
      yt[i] = y + size_t(t0 + i) * ldy;
    }
    if (nt == kTokens) {
      rows_tile<Bits, Ternary, kTokens>(w, L, aq, as, yt, r0, r1);
    } else {
      rows_tile<Bits, Ternary, 1>(w, L, aq, as, yt, r0, r1);
    }
  }
}

}  // namespace

void matmul_q4k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  kernel<4, false>(w, a, y, ldy, r0, r1);
}
void matmul_q3k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  kernel<3, false>(w, a, y, ldy, r0, r1);
}
void matmul_q2k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  kernel<2, false>(w, a, y, ldy, r0, r1);
}
void matmul_t2k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  kernel<2, true>(w, a, y, ldy, r0, r1);
}

}  // namespace lowbitk_neon
}  // namespace stk
#endif  // __ARM_NEON
