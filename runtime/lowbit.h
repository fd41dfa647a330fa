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
  return f == WeightFormat::Q4 ? 4u : f == WeightFormat::Q3 ? 3u : 2u;
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

}  // namespace stk
