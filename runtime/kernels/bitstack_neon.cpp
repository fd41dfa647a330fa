// BitStack kernel, NEON (AArch64 and ARMv7-A), fp32 throughout like
// bitstack_scalar.cpp. Per (token, block, rank, tile of 256 columns)
// z = v_k ⊙ s ⊙ x is formed once; a row's signed sum over the tile is
// 2 * (sum of z where the sign is +) - sum(z). The + sums come from the
// packed sign bits directly: one 32-bit word of a row covers 32 columns, and
// vtst against the bits {1,2,4,8} << 4q turns it into the lane masks of
// column quad q, which select z with one AND. Four rows share each z load.
#if defined(__ARM_NEON)
#include <arm_neon.h>

#include <cstring>

#include "runtime/bitstack_format.h"
#include "runtime/block_pool.h"
#include "runtime/kernels/kernels.h"
#include "runtime/kernels/neon_common.h"

namespace stk {
namespace {

using neon::half4;
using neon::half_at;
using neon::hsum;

constexpr uint32_t kTile = 256;
constexpr uint32_t kRows = 4;  // rows that share each z load

// 32 sign bits of a row from byte `at`, reading only bytes < stride (the
// row's end); bit j is column 32 * word + j.
inline uint32_t load_bits(const uint8_t* row, uint32_t at, uint32_t stride) {
  if (at + 4 <= stride) {
    uint32_t w;
    std::memcpy(&w, row + at, 4);  // little-endian, as the format
    return w;
  }
  uint32_t w = 0;
  for (uint32_t b = 0; at + b < stride && b < 4; ++b) w |= uint32_t(row[at + b]) << (8 * b);
  return w;
}

// Sums of z over the + signs of NR rows (sign rows s[0..NR) at byte
// `first` of the tile, `words` 32-column words, z zero past the tile's end).
// Two accumulators per row, combined the same way for every NR, so a row's
// result does not depend on which rows share its pass.
template <int NR>
inline void plus_sums(const uint8_t* const* s, uint32_t first, uint32_t stride, uint32_t words, const float* z,
                      const uint32x4_t* sel, float* out) {
  float32x4_t acc[NR][2];
  for (int j = 0; j < NR; ++j) acc[j][0] = acc[j][1] = vdupq_n_f32(0.0f);
  for (uint32_t i = 0; i < words; ++i) {
    uint32x4_t bits[NR];
    for (int j = 0; j < NR; ++j) bits[j] = vdupq_n_u32(load_bits(s[j], first + 4 * i, stride));
    for (int q = 0; q < 8; ++q) {
      const uint32x4_t zz = vreinterpretq_u32_f32(vld1q_f32(z + 32 * i + 4 * q));
      for (int j = 0; j < NR; ++j) {
        const uint32x4_t picked = vandq_u32(vtstq_u32(bits[j], sel[q]), zz);
        acc[j][q & 1] = vaddq_f32(acc[j][q & 1], vreinterpretq_f32_u32(picked));
      }
    }
  }
  for (int j = 0; j < NR; ++j) out[j] = hsum(vaddq_f32(acc[j][0], acc[j][1]));
}

}  // namespace

void matmul_bitstack_neon(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                          uint32_t r1) {
  const BitStackTensor& T = *reinterpret_cast<const BitStackTensor*>(w.data);
  const uint32_t rows = w.rows, cols = w.cols;
  float z[kTile];
  uint32x4_t sel[8];  // lane l of quad q tests bit 4q + l of a word
  for (int q = 0; q < 8; ++q) {
    const uint32_t b[4] = {1u << (4 * q), 2u << (4 * q), 4u << (4 * q), 8u << (4 * q)};
    sel[q] = vld1q_u32(b);
  }
  for (uint32_t t = 0; t < a.n; ++t) {
    const float* x = a.x + size_t(t) * a.ldx;
    float* yt = y + size_t(t) * ldy;
    for (uint32_t r = r0; r < r1; ++r) yt[r] = 0.0f;
    for (uint32_t b = 0; b < T.n_loaded; ++b) {
      const BitStackBlockView bv = bitstack_block_view(T, b);
      const uint8_t* signs = bv.signs;
      const uint16_t* U = reinterpret_cast<const uint16_t*>(bv.U);
      const uint16_t* V = reinterpret_cast<const uint16_t*>(bv.V);
      const uint32_t stride = bv.sign_row_bytes;
      const float us = bv.u_scale;
      for (uint32_t k = 0; k < bv.rank; ++k) {
        const uint16_t* Vk = V + size_t(k) * cols;
        const uint16_t* Uk = U + size_t(k) * rows;
        for (uint32_t c0 = 0; c0 < cols; c0 += kTile) {
          const uint32_t n = cols - c0 < kTile ? cols - c0 : kTile;
          const uint32_t words = (n + 31) / 32;
          float32x4_t tot = vdupq_n_f32(0.0f);
          uint32_t i = 0;
          for (; i + 4 <= n; i += 4) {
            float32x4_t v = half4(Vk + c0 + i);
            if (T.in_scale != nullptr) v = vmulq_f32(v, vld1q_f32(T.in_scale + c0 + i));
            const float32x4_t zz = vmulq_f32(v, vld1q_f32(x + c0 + i));
            vst1q_f32(z + i, zz);
            tot = vaddq_f32(tot, zz);
          }
          float total = hsum(tot);
          for (; i < n; ++i) {  // the last n % 4 columns
            const float v = half_at(Vk, c0 + i) * (T.in_scale != nullptr ? T.in_scale[c0 + i] : 1.0f);
            z[i] = v * x[c0 + i];
            total += z[i];
          }
          for (; i < words * 32; ++i) z[i] = 0.0f;  // sign bits past the row's end select nothing
          const uint32_t first = c0 / 8;
          uint32_t r = r0;
          float pos[kRows];
          for (; r + kRows <= r1; r += kRows) {
            const uint8_t* s[kRows];
            for (uint32_t j = 0; j < kRows; ++j) s[j] = signs + size_t(r + j) * stride;
            plus_sums<kRows>(s, first, stride, words, z, sel, pos);
            for (uint32_t j = 0; j < kRows; ++j) yt[r + j] += half_at(Uk, r + j) * us * (2.0f * pos[j] - total);
          }
          for (; r < r1; ++r) {
            const uint8_t* s = signs + size_t(r) * stride;
            plus_sums<1>(&s, first, stride, words, z, sel, pos);
            yt[r] += half_at(Uk, r) * us * (2.0f * pos[0] - total);
          }
        }
      }
    }
  }
}

}  // namespace stk
#endif  // __ARM_NEON
