// BitStack on-disk layout (docs/format.md, section "BitStack"). Shared by the
// runtime reader, the block pool, the kernels and the host packer.
//
// A BitStack tensor (WeightFormat::BitStack) keeps in the Weights section only
// its input scale, when params[1] bit 0 (kBitStackHasInputScale) is set: cols
// f32 values the kernel multiplies the input by (absent, 0 bytes, when the
// activation scale was folded into the preceding RMSNorm).
// params[0] = number of residual blocks the file holds for the tensor.
//
// Its residual blocks live in the BitStackBlocks section, all tensors' blocks
// interleaved in global load order, each one self-describing:
//   BitStackBlockHeader (64 bytes)
//   signs  [rows][sign_row_bytes]  bit c%8 of byte c/8 = 1 when S[r][c] = +1
//   U      fp16 [rank][rows]       at u_offset (16-byte aligned)
//   V      fp16 [rank][cols]       at v_offset (16-byte aligned)
//   zero padding to a multiple of 64 bytes
// A session keeps only what follows the header (the block's resident bytes,
// a multiple of 64): the header's few fields the kernels need live in the
// model's block index (BitStackBlockMeta), so a RAM budget pays for weights,
// not for 64 bytes of description per block.
// The block's weights are S ⊙ (U^T V): W[r][c] = S[r][c] * sum_k U[k][r] V[k][c].
//
// A block of kind kBitStackKindScaledFirst has no factors of its own: its
// magnitude is a scalar a times that of its tensor's block 0 (always
// resident before it), W[r][c] = S[r][c] * a * sum_k U0[k][r] V0[k][c]; a is
// the f32 in reserved[0], rank is block 0's, u_offset = v_offset = 0. On
// deep residual planes of wide layers this gives about the same error as
// fresh factors for 25 % fewer bytes (tools/bitstack_decompose.h).
#pragma once
#include <cstdint>
#include <cstring>

#include "runtime/checked_math.h"

namespace stk {

constexpr uint32_t kBitStackBlockMagic = 0x4B425342u;  // "BSBK"
constexpr uint32_t kBitStackMaxRank = 64;
constexpr uint32_t kBitStackKindLowRank = 0;      // magnitude = U^T V
constexpr uint32_t kBitStackKindScaledFirst = 1;  // magnitude = a * (block 0's U^T V)
constexpr uint32_t kBitStackHasInputScale = 1;  // FileTensor.params[1] flag

struct BitStackBlockHeader {  // 64 bytes, at a 64-byte aligned offset
  uint32_t magic;             // kBitStackBlockMagic
  uint32_t layer;
  uint16_t role;              // TensorRole of the tensor it belongs to
  uint16_t index;             // position in that tensor's own block order, from 0
  uint32_t rows, cols;
  uint32_t rank;              // 1..kBitStackMaxRank
  uint32_t kind;              // kBitStackKindLowRank or kBitStackKindScaledFirst
  uint32_t sign_row_bytes;    // ceil(cols / 8)
  uint32_t u_offset;          // from the block start (0 for kBitStackKindScaledFirst)
  uint32_t v_offset;
  uint64_t bytes;             // whole block, header and padding included
  uint32_t reserved[4];       // kBitStackKindScaledFirst: [0] = f32 bits of a; the rest 0
};
static_assert(sizeof(BitStackBlockHeader) == 64, "block header is 64 bytes on disk");
constexpr uint32_t kBitStackHeaderBytes = sizeof(BitStackBlockHeader);

// The layout a (rows, cols, rank) block must have; false on overflow.
// Offsets count from the header; `resident_bytes()` = bytes - header is what a
// session holds of the block (its sign plane then starts the resident bytes).
struct BitStackLayout {
  uint32_t sign_row_bytes;
  uint64_t u_offset, v_offset, bytes;
  uint64_t resident_bytes() const { return bytes - kBitStackHeaderBytes; }
};

// What the kernels need of a block header beyond its tensor's shape, kept
// by the model's block index for every block (the session holds only the
// resident bytes).
struct BitStackBlockMeta {
  uint16_t rank, kind;
  float scale;  // multiplies every U value: kind 1's a, kind 0's 1
};

// Where U and V start in the resident bytes of a low-rank block of this
// shape and rank (the header's u_offset, v_offset less the header).
struct BitStackFactorOffsets {
  uint64_t u, v;
};
inline BitStackFactorOffsets bitstack_factor_offsets(uint32_t rows, uint32_t cols, uint32_t rank) {
  const uint64_t u = align_up(uint64_t(rows) * ((cols + 7) / 8), 16);
  return BitStackFactorOffsets{u, align_up(u + uint64_t(rank) * 2 * rows, 16)};
}

inline bool bitstack_layout(uint32_t rows, uint32_t cols, uint32_t rank, BitStackLayout* out);

// The layout of a block of `kind`; false on overflow or an unknown kind.
inline bool bitstack_layout_kind(uint32_t rows, uint32_t cols, uint32_t rank, uint32_t kind, BitStackLayout* out) {
  if (kind == kBitStackKindLowRank) return bitstack_layout(rows, cols, rank, out);
  if (kind != kBitStackKindScaledFirst) return false;
  uint64_t signs;
  out->sign_row_bytes = (cols + 7) / 8;
  if (!mul_ok(rows, out->sign_row_bytes, &signs) || signs > (1ull << 40)) return false;
  out->u_offset = out->v_offset = 0;
  out->bytes = align_up(64 + signs, 64);
  return true;
}

inline bool bitstack_layout(uint32_t rows, uint32_t cols, uint32_t rank, BitStackLayout* out) {
  uint64_t signs, u, v, end;
  out->sign_row_bytes = (cols + 7) / 8;
  if (!mul_ok(rows, out->sign_row_bytes, &signs) || !mul_ok(uint64_t(rank) * 2, rows, &u) ||
      !mul_ok(uint64_t(rank) * 2, cols, &v)) {
    return false;
  }
  if (signs > (1ull << 40) || u > (1ull << 40) || v > (1ull << 40)) return false;
  // The header is a multiple of 16 bytes, so the offsets from it are the
  // resident ones shifted by it.
  const BitStackFactorOffsets at = bitstack_factor_offsets(rows, cols, rank);
  out->u_offset = kBitStackHeaderBytes + at.u;
  out->v_offset = kBitStackHeaderBytes + at.v;
  end = out->v_offset + v;
  out->bytes = align_up(end, 64);
  return true;
}

// The meta of a header that the block index has validated.
inline BitStackBlockMeta bitstack_block_meta(const BitStackBlockHeader& h) {
  BitStackBlockMeta m{uint16_t(h.rank), uint16_t(h.kind), 1.0f};
  if (h.kind == kBitStackKindScaledFirst) std::memcpy(&m.scale, &h.reserved[0], 4);
  return m;
}

}  // namespace stk
