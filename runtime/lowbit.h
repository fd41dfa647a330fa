// Group-wise low-bit weight formats: Q4, Q3, Q2 (unsigned codes with an fp16
// scale and an fp16 offset per group) and T2 (ternary {-1,0,+1} codes with an
// fp16 scale per group). docs/lowbit_formats.md is the prose specification.
//
// Layout of a rows x cols tensor (params[0] = group size G, a multiple of 32
// in [32, 256]; params[1..3] = 0):
//   codes:  per row, ceil(cols/32) blocks of 32 codes, block_bytes each;
//           a ragged last block is padded with code 0 (never read as weight).
//   scales: at the next 64-byte boundary, per row with n = ceil(cols/G) groups:
//           Q4/Q3/Q2: fp16 d[n], then fp16 m[n]   (weight = d * code + m)
//           T2:       fp16 d[n]                   (weight = d * (code - 1), code in 0..2)
// Code packing inside a 32-block (code j, 0 <= j < 32):
//   Q4 (16 bytes): byte j%16, low nibble for j < 16, high nibble otherwise.
//   Q2, T2 (8 bytes): byte j%8, bits 2*(j/8) .. 2*(j/8)+1.
//   Q3 (12 bytes): low two bits as Q2 in bytes 0..7; bit 2 of code j is bit j
//                  of the little-endian uint32 in bytes 8..11.
#pragma once
#include <cstdint>
#include <cstring>

#include "runtime/format.h"

namespace stk {

constexpr uint32_t kLowbitBlock = 32;

inline bool is_lowbit_format(WeightFormat f) {
  return f == WeightFormat::Q4 || f == WeightFormat::Q3 || f == WeightFormat::Q2 || f == WeightFormat::T2;
}
// Bits per stored code.
inline uint32_t lowbit_bits(WeightFormat f) {
  return (f == WeightFormat::Q4 || f == WeightFormat::Q4K) ? 4u : (f == WeightFormat::Q3 || f == WeightFormat::Q3K) ? 3u : 2u;
}
inline uint32_t lowbit_block_bytes(WeightFormat f) { return lowbit_bits(f) * kLowbitBlock / 8; }
// fp16 values per group in the scale plane.
inline uint32_t lowbit_scale_halves(WeightFormat f) { return f == WeightFormat::T2 ? 1u : 2u; }
inline bool lowbit_group_ok(uint32_t g) { return g >= 32 && g <= 256 && g % 32 == 0; }

struct LowbitLayout {
  uint32_t bits, group, blocks_per_row, groups_per_row, block_bytes, scale_halves;
  uint64_t row_code_bytes;   // blocks_per_row * block_bytes
  uint64_t scales_offset;    // start of the fp16 scale plane
  uint64_t row_scale_bytes;  // groups_per_row * scale_halves * 2
  uint64_t total_bytes;
};

// False when the format/params are invalid or a size overflows.
bool lowbit_layout(WeightFormat f, uint32_t rows, uint32_t cols, const uint32_t params[4], LowbitLayout* out);

// Code j (0..31) of one packed block.
inline uint32_t lowbit_code(const uint8_t* blk, uint32_t bits, uint32_t j) {
  switch (bits) {
    case 4:
      return j < 16 ? (blk[j] & 0xFu) : (blk[j - 16] >> 4);
    case 3: {
      uint32_t hi;
      std::memcpy(&hi, blk + 8, 4);
      return ((blk[j % 8] >> (2 * (j / 8))) & 3u) | (((hi >> j) & 1u) << 2);
    }
    default:
      return (blk[j % 8] >> (2 * (j / 8))) & 3u;
  }
}

// ---------------------------------------------------------------------------
// Q4K, Q3K, Q2K, T2K: the same codes with quantized group scales, so small
// groups (16) are affordable. docs/format.md §8.3 is the specification.
//
// params[0] = group size G, a multiple of 16 in [16, 256];
// params[1] = bit pattern of the f32 tensor scale D (finite, 0 < D < 2^64);
// params[2] = log step s in 2..6 (group scales are D * 2^(-e / 2^s));
// params[3] = 0.
// Layout of a rows x cols tensor, B = ceil(cols/16), n = ceil(cols/G):
//   codes:  per row, B blocks of 16 codes, kblock_bytes each (Q4K 8, Q3K 6,
//           Q2K/T2K 4); a ragged last block is padded with code 0.
//   scales: at the next 64-byte boundary, per row u8 e[n] then (not T2K) u8 z[n].
// Group g of a row: d = D * 2^(-e[g] / 2^s) (lowbitk_scale), and
//   Q4K/Q3K/Q2K weight = d * (q - z[g] * 2^(bits - 8))   (zero in 1/2^(8-bits) steps)
//   T2K         weight = d * (q - 1),  q in 0..2.
// Code j (0..15) inside a block:
//   Q4K: byte j%8, low nibble for j < 8, high nibble otherwise.
//   Q2K, T2K: byte j%4, bits 2*(j/4) .. 2*(j/4)+1.
//   Q3K: low two bits as Q2K in bytes 0..3; bit 2 is bit j of the
//        little-endian u16 in bytes 4..5.

constexpr uint32_t kLowbitKBlock = 16;

inline bool is_lowbitk_format(WeightFormat f) {
  return f == WeightFormat::Q4K || f == WeightFormat::Q3K || f == WeightFormat::Q2K || f == WeightFormat::T2K;
}
// Q4K -> Q4 etc.; other formats unchanged.
inline WeightFormat lowbitk_base(WeightFormat f) {
  switch (f) {
    case WeightFormat::Q4K: return WeightFormat::Q4;
    case WeightFormat::Q3K: return WeightFormat::Q3;
    case WeightFormat::Q2K: return WeightFormat::Q2;
    case WeightFormat::T2K: return WeightFormat::T2;
    default: return f;
  }
}
inline bool lowbitk_group_ok(uint32_t g) { return g >= 16 && g <= 256 && g % 16 == 0; }

struct LowbitKLayout {
  uint32_t bits, group, blocks_per_row, groups_per_row, block_bytes, shift;
  bool ternary;
  float scale;               // D
  uint64_t row_code_bytes;   // blocks_per_row * block_bytes
  uint64_t scales_offset;    // start of the u8 e/z plane
  uint64_t row_scale_bytes;  // groups_per_row * (ternary ? 1 : 2)
  uint64_t total_bytes;
};

// False when the format/params are invalid (including a non-finite or
// out-of-range D) or a size overflows.
bool lowbitk_layout(WeightFormat f, uint32_t rows, uint32_t cols, const uint32_t params[4], LowbitKLayout* out);

// 2^(-k/64), k = 0..63 (exact decimal literals, so every build decodes alike).
extern const float kLowbitKFrac[64];
// d = D * 2^(-e / 2^shift), shift in 2..6.
inline float lowbitk_scale(float D, uint32_t shift, uint32_t e) {
  const uint32_t whole = e >> shift, frac = (e & ((1u << shift) - 1u)) << (6u - shift);
  const uint32_t pow2_bits = (127u - whole) << 23;  // the float 2^-whole (whole <= 63: a normal number)
  float pow2;
  std::memcpy(&pow2, &pow2_bits, 4);
  return D * kLowbitKFrac[frac] * pow2;
}

// Code j (0..15) of one packed 16-block.
inline uint32_t lowbitk_code(const uint8_t* blk, uint32_t bits, uint32_t j) {
  switch (bits) {
    case 4:
      return j < 8 ? (blk[j] & 0xFu) : (blk[j - 8] >> 4);
    case 3: {
      const uint32_t hi = uint32_t(blk[4]) | (uint32_t(blk[5]) << 8);
      return ((blk[j % 4] >> (2 * (j / 4))) & 3u) | (((hi >> j) & 1u) << 2);
    }
    default:
      return (blk[j % 4] >> (2 * (j / 4))) & 3u;
  }
}

}  // namespace stk
