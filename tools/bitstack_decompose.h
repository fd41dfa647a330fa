// BitStack decomposition of one weight matrix (host tool): repeated
// sign + low-rank-magnitude residual blocks, and their on-disk encoding.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/format.h"

namespace stk::host {

struct BitStackBlock {
  uint32_t rank = 0;
  std::vector<uint8_t> signs;  // [rows][ceil(cols/8)], bit set = +1
  std::vector<uint16_t> u;     // fp16 [rank][rows]
  std::vector<uint16_t> v;     // fp16 [rank][cols]
  double residual_before = 0;  // ||R||_F^2 before and after this block
  double residual_after = 0;
};

// Default rank: the factors ((rows + cols) * rank fp16) stay within 1/8 of
// the sign plane's bytes (rows * cols / 8): rank = rows*cols / (128 (rows+cols)),
// at least 1 and at most 16 (the paper's rank for 4096-wide layers).
uint32_t bitstack_default_rank(uint32_t rows, uint32_t cols);

// `iters` blocks of W (rows x cols, row-major): S = sign(R) (0 -> +1),
// |R| ~ U^T V by rank-`rank` truncated SVD with U, V = sqrt(sigma) * vectors
// rounded to fp16, block = S ⊙ (U^T V), R -= block (with the rounded factors,
// so later blocks correct the rounding).
// col_weight (optional, [cols]) weights column j of the reported residuals.
std::vector<BitStackBlock> bitstack_decompose(const float* w, uint32_t rows, uint32_t cols, uint32_t iters,
                                              uint32_t rank, const double* col_weight = nullptr);

// Adds the dense weights of `b` to out[rows*cols].
void bitstack_block_accumulate(const BitStackBlock& b, uint32_t rows, uint32_t cols, float* out);

// The block's bytes in the BitStackBlocks section (header included).
std::vector<uint8_t> bitstack_encode_block(const BitStackBlock& b, uint32_t layer, TensorRole role, uint32_t index,
                                           uint32_t rows, uint32_t cols);

}  // namespace stk::host
