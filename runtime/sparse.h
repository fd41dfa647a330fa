// N:M structured-sparse weights (WeightFormat::Sparse): in every group of M
// consecutive input weights of a row at most N are kept. docs/sparse_format.md
// is the prose specification.
//
// params[0] = N, params[1] = M (1 <= N < M <= 16), params[2] = value format
// code (F32, Q8, Q4, Q3, Q2 or T2), params[3] = the value format's params[0]
// (Q8: 32; low-bit: group size; F32: 0).
//
// Per row: cols/M full groups keep N values each; a shorter tail group of
// t = cols % M weights keeps ceil(N*t/M). kept = (cols/M)*N + ceil(N*(cols%M)/M).
//
// Layout of a rows x cols tensor:
//   values: a rows x kept tensor in the value format, byte for byte (the kept
//           weights of a row, left to right), so it is decoded by that format.
//   indices: at the next 64-byte boundary, per row ceil(kept*b/8) bytes, where
//           b = ceil(log2 M) (1 for M=2, 2 for M<=4, 3 for M<=8, 4 for M<=16);
//           kept value j's position inside its group is bits [j*b, j*b+b) of the
//           row's little-endian bit stream; positions ascend within a group.
//   8 zero bytes of padding at the end (vector kernels read whole words).
#pragma once
#include <cstdint>

#include "runtime/format.h"
#include "runtime/weights.h"

namespace stk {

constexpr uint32_t kSparseMaxM = 16;
constexpr uint32_t kSparseIndexPad = 8;

inline uint32_t sparse_index_bits(uint32_t m) {
  uint32_t b = 0;
  while ((1u << b) < m) ++b;
  return b;
}
// Weights kept in a group of `len` inputs (len == M for full groups).
inline uint32_t sparse_keep(uint32_t n, uint32_t m, uint32_t len) { return (n * len + m - 1) / m; }

struct SparseLayout {
  uint32_t n, m, bits;
  uint32_t full_groups;  // cols / m
  uint32_t tail_len;     // cols % m
  uint32_t kept_full;    // full_groups * n: kept values of the full groups
  uint32_t kept;         // kept values per row
  WeightFormat value_format;
  uint32_t value_params[4];
  uint64_t values_bytes;
  uint64_t index_offset;     // start of the index plane
  uint64_t index_row_bytes;  // ceil(kept * bits / 8)
  uint64_t total_bytes;
};

// False when params are invalid or a size overflows.
bool sparse_layout(uint32_t rows, uint32_t cols, const uint32_t params[4], SparseLayout* out);

// The value plane as a rows x kept tensor of the value format.
inline WeightView sparse_values_view(const WeightView& w, const SparseLayout& L) {
  return WeightView{L.value_format, w.rows, L.kept, w.data, L.values_bytes,
                    {L.value_params[0], L.value_params[1], L.value_params[2], L.value_params[3]}};
}

// Position of kept value j inside its group (reads 2 bytes; the padding keeps
// the read inside the tensor).
inline uint32_t sparse_index(const uint8_t* row_indices, uint32_t j, uint32_t bits) {
  const uint64_t bit = uint64_t(j) * bits;
  const uint32_t v = uint32_t(row_indices[bit / 8]) | (uint32_t(row_indices[bit / 8 + 1]) << 8);
  return (v >> (bit % 8)) & ((1u << bits) - 1u);
}

// Input column of kept value j with in-group position idx, clamped to the row
// so a malformed index can never address memory outside it.
inline uint32_t sparse_column(const SparseLayout& L, uint32_t cols, uint32_t j, uint32_t idx) {
  const uint32_t c = j < L.kept_full ? (j / L.n) * L.m + idx : L.full_groups * L.m + idx;
  return c < cols ? c : cols - 1;
}

// Kept value j of row r decoded to float (scalar; tests and reference kernels).
float sparse_value(const WeightView& values, uint32_t r, uint32_t j);

// Kept values j0 .. j0+count-1 of row r decoded to float, the layout of the
// value format worked out once (scalar kernel, dequantization).
void sparse_values(const WeightView& values, uint32_t r, uint32_t j0, uint32_t count, float* out);

// Dense row: zeros except the kept values (called by weight_dequantize_row).
void sparse_dequantize_row(const WeightView& w, uint32_t row, float* out);

}  // namespace stk
