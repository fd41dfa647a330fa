// A BitStack sign plane re-laid in RAM in groups of 16 rows, for the AVX-512
// VBMI kernel (runtime/kernels/bitstack_vbmi.cpp). Never in a file: the block
// pool re-lays each block as it loads it, when its session's kernel set asks
// for it (KernelSet::bitstack_signs16).
//
// Why: that kernel looks up, for 16 rows at once, the same 32 columns of each
// row (lane j of a vector = dword p of row j). From row-major signs it builds
// those vectors with a 16 x 16 dword transpose: 64 shuffles per 16 rows x 512
// columns, on the same port as its table lookups, and 16 row streams 96 bytes
// apart that the hardware prefetcher follows badly. In 16-row groups each
// vector is one aligned 64-byte load from one sequential stream.
//
// Layout (same bytes, same place in the block): when signs16_applies(rows,
// cols), each full group of 16 rows, rows 16 i .. 16 i + 15, keeps its
// 16 * stride bytes at 16 i * stride, as stride / 4 vectors of 64 bytes:
// vector p holds dword p (sign bytes 4p .. 4p + 3) of the group's rows, row
// 16 i + j at bytes 4j .. 4j + 3. The rows after the last full group stay one
// after another. stride = sign_row_bytes = ceil(cols / 8).
#pragma once
#include <cstddef>
#include <cstdint>

namespace stk {

constexpr uint32_t kSigns16Rows = 16;

// Whether a rows x cols sign plane takes the 16-row layout: rows a whole number
// of dwords long (every shape of the Llama models the bench synthesises), and at
// least one full group.
inline bool signs16_applies(uint32_t rows, uint32_t cols) {
  return ((cols + 7) / 8) % 4 == 0 && rows >= kSigns16Rows;
}

// Where sign byte j of row r is in a plane in the 16-row layout.
inline size_t signs16_byte(uint32_t r, uint32_t j, uint32_t rows, uint32_t stride) {
  if (r >= rows / kSigns16Rows * kSigns16Rows) return size_t(r) * stride + j;
  return size_t(r / kSigns16Rows) * kSigns16Rows * stride + size_t(j / 4) * 64 + (r % kSigns16Rows) * 4 + j % 4;
}

// Bytes of scratch the re-layout needs for rows of `stride` bytes.
inline size_t signs16_scratch_bytes(uint32_t stride) { return size_t(kSigns16Rows) * stride; }

// Re-lays a row-major plane in the 16-row layout (to_groups) or back, in
// place. Only for planes where signs16_applies; scratch holds
// signs16_scratch_bytes(stride) bytes.
void signs16_relayout(uint8_t* signs, uint32_t rows, uint32_t stride, bool to_groups, uint8_t* scratch);

}  // namespace stk
