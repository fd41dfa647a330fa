// NEON kernels for the low-bit formats Q4, Q3, Q2, T2 (runtime/lowbit.h),
// AArch64 and ARMv7-A. Like lowbit_scalar.cpp they multiply the codes with
// the int8 copy of the activations in exact integers, so every ISA forms the
// same per-block integer sums; only the float accumulation order differs:
//
//   y = sum_b d_g(b) xs_b sum_j q_j a_j  +  sum_g m_g sum_{b in g} xs_b sum_j a_j
//
// (T2: m_g = -d_g). A block's 32 codes are unpacked to bytes once and shared
// by up to four tokens. The integer dot product is `sdot` when the compiler
// targets the dot-product extension (cmake -DSTK_ARM_DOTPROD=ON), otherwise
// vmull_s8/vmlal_s8 + vpaddl. The offset term uses per-token group sums of
// the activations, made once per call.
#if defined(__ARM_NEON)
#include <arm_neon.h>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/neon_common.h"
#include "runtime/lowbit.h"

namespace stk {
namespace lowbit_neon {
namespace {

using neon::half_at;
using neon::hsum;
using neon::mla_n;

// Tokens that share each decoded block (batched prefill).
constexpr uint32_t kTokens = 4;
// Groups whose per-token activation sums live on the stack at once (8 KB);
// a wider row is processed in stripes of this many groups.
constexpr uint32_t kStripeGroups = 512;

// Codes 0..15 and 16..31 of one 32-block, one byte each.
struct Codes {
  uint8x16_t lo, hi;
};

// Reads exactly the block's Bits * 4 bytes.
template <int Bits>
inline Codes decode(const uint8_t* p) {
  if constexpr (Bits == 4) {  // byte j: code j in the low nibble, code j + 16 in the high one
    const uint8x16_t v = vld1q_u8(p);
    return {vandq_u8(v, vdupq_n_u8(15)), vshrq_n_u8(v, 4)};
  } else {  // byte j % 8, bits 2 * (j / 8)
    const uint8x8_t v = vld1_u8(p), three = vdup_n_u8(3);
    Codes c{vcombine_u8(vand_u8(v, three), vand_u8(vshr_n_u8(v, 2), three)),
            vcombine_u8(vand_u8(vshr_n_u8(v, 4), three), vshr_n_u8(v, 6))};
    if constexpr (Bits == 3) {  // bit 2 of code j: bit j % 8 of byte 8 + j / 8
      static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
      const uint8x16_t bit = vld1q_u8(kBit), four = vdupq_n_u8(4);
      c.lo = vorrq_u8(c.lo, vandq_u8(vtstq_u8(vcombine_u8(vdup_n_u8(p[8]), vdup_n_u8(p[9])), bit), four));
      c.hi = vorrq_u8(c.hi, vandq_u8(vtstq_u8(vcombine_u8(vdup_n_u8(p[10]), vdup_n_u8(p[11])), bit), four));
    }
    return c;
  }
}

// Four int32 partial sums of codes x activations over one block. Exact on
// both paths: on the vmull one an int16 lane adds four products of at most
// 15 * 128. Reads the block's 32 activations: the int8 copy is padded with
// zeros to whole blocks (ldq >= 32 * blocks, as for the scalar reference).
inline int32x4_t dot_block(const Codes& q, const int8_t* a) {
  const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
  const int8x16_t q0 = vreinterpretq_s8_u8(q.lo), q1 = vreinterpretq_s8_u8(q.hi);
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(vdotq_s32(vdupq_n_s32(0), q0, a0), q1, a1);
#else
  int16x8_t p = vmull_s8(vget_low_s8(q0), vget_low_s8(a0));
  p = vmlal_s8(p, vget_high_s8(q0), vget_high_s8(a0));
  p = vmlal_s8(p, vget_low_s8(q1), vget_low_s8(a1));
  p = vmlal_s8(p, vget_high_s8(q1), vget_high_s8(a1));
  return vpaddlq_s16(p);
#endif
}

// Sum of one block's 32 int8 activations.
inline int32_t sum_block(const int8_t* a) {
  return hsum(vpaddlq_s16(vaddq_s16(vpaddlq_s8(vld1q_s8(a)), vpaddlq_s8(vld1q_s8(a + 16)))));
}

// Rows r0..r1, groups g0..g1 (one stripe), NT tokens. gsum[t][g - g0] is
// sum over group g's blocks of xs_b * sum(a). Each (row, token) is computed
// by the same sequence whatever NT and the row range are: two accumulators
// (even and odd blocks), combined the same way.
template <int Bits, bool Ternary, int NT>
void rows_tile(const WeightView& w, const LowbitLayout& L, const int8_t* const* aq, const float* const* as,
               const float (*gsum)[kStripeGroups], uint32_t g0, uint32_t g1, float* const* yt, uint32_t r0,
               uint32_t r1) {
  const uint32_t bpg = L.group / kLowbitBlock, nb = L.blocks_per_row, ng = L.groups_per_row;
  for (uint32_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.data + uint64_t(r) * L.row_code_bytes;
    const uint8_t* sc = w.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes;  // d[ng], then m[ng]
    float32x4_t acc[NT][2];
    float off[NT];
    for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f), off[t] = 0.0f;
    for (uint32_t g = g0; g < g1; ++g) {
      const float d = half_at(sc, g);
      const float m = Ternary ? -d : half_at(sc, uint64_t(ng) + g);
      const uint32_t b1 = (g + 1) * bpg < nb ? (g + 1) * bpg : nb;  // the last group may be short
      for (uint32_t b = g * bpg; b < b1; ++b) {
        const Codes q = decode<Bits>(codes + uint64_t(b) * (Bits * 4));
        for (int t = 0; t < NT; ++t) {
          float32x4_t& s = acc[t][b & 1];
          s = mla_n(s, vcvtq_f32_s32(dot_block(q, aq[t] + size_t(b) * kLowbitBlock)), d * as[t][b]);
        }
      }
      for (int t = 0; t < NT; ++t) off[t] += m * gsum[t][g - g0];
    }
    for (int t = 0; t < NT; ++t) {
      const float part = hsum(vaddq_f32(acc[t][0], acc[t][1])) + off[t];
      yt[t][r] = g0 == 0 ? part : yt[t][r] + part;
    }
  }
}

template <int Bits, bool Ternary>
void kernel(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  LowbitLayout L;
  if (!lowbit_layout(w.format, w.rows, w.cols, w.params, &L)) return;  // model_open validated it
  const uint32_t act_groups = (w.cols + 31) / 32;
  const uint32_t bpg = L.group / kLowbitBlock, nb = L.blocks_per_row, ng = L.groups_per_row;
  float gsum[kTokens][kStripeGroups];
  for (uint32_t g0 = 0; g0 < ng; g0 += kStripeGroups) {
    const uint32_t g1 = ng - g0 < kStripeGroups ? ng : g0 + kStripeGroups;
    // Four tokens at a time, then the rest one by one: two instantiations
    // instead of four keep the code small.
    for (uint32_t t0 = 0, nt = 0; t0 < a.n; t0 += nt) {
      nt = a.n - t0 >= kTokens ? kTokens : 1;
      const int8_t* aq[kTokens];
      const float* as[kTokens];
      float* yt[kTokens];
      for (uint32_t i = 0; i < nt; ++i) {
        const uint32_t t = t0 + i;
        aq[i] = a.q8 + size_t(t) * a.ldq;
        as[i] = a.q8_scales + size_t(t) * act_groups;
        yt[i] = y + size_t(t) * ldy;
        for (uint32_t g = g0; g < g1; ++g) {
          const uint32_t b1 = (g + 1) * bpg < nb ? (g + 1) * bpg : nb;
          float s = 0.0f;
          for (uint32_t b = g * bpg; b < b1; ++b) s += as[i][b] * float(sum_block(aq[i] + size_t(b) * kLowbitBlock));
          gsum[i][g - g0] = s;
        }
      }
      if (nt == kTokens) {
        rows_tile<Bits, Ternary, kTokens>(w, L, aq, as, gsum, g0, g1, yt, r0, r1);
      } else {
        rows_tile<Bits, Ternary, 1>(w, L, aq, as, gsum, g0, g1, yt, r0, r1);
      }
    }
  }
}

}  // namespace

void matmul_q4(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  kernel<4, false>(w, a, y, ldy, r0, r1);
}
void matmul_q3(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  kernel<3, false>(w, a, y, ldy, r0, r1);
}
void matmul_q2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  kernel<2, false>(w, a, y, ldy, r0, r1);
}
void matmul_t2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  kernel<2, true>(w, a, y, ldy, r0, r1);
}

}  // namespace lowbit_neon
}  // namespace stk
#endif  // __ARM_NEON
