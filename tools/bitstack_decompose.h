// BitStack decomposition of one weight matrix (host tool): repeated
// sign + low-rank-magnitude residual blocks, and their on-disk encoding.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/format.h"

namespace stk::host {

struct BitStackBlock {
  uint32_t rank = 0;
  // kBitStackKindLowRank: magnitude U^T V from u, v. kBitStackKindScaledFirst:
  // scale * (block 0's U^T V); u, v then hold copies of block 0's factors
  // (not written to the file) and `scale` is stored.
  uint32_t kind = 0;
  float scale = 1.0f;
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

// Fitting blocks to the layer's output instead of its weights: with the
// second moments of the layer's input H = E[x x^T] ([cols][cols], in the
// space the blocks are fitted in), a block B of residual R is chosen to
// minimise the output error sum_r (R_r - B_r) H (R_r - B_r)^T:
//   1. magnitude M = U^T V from the rank-`rank` SVD of |R| (as without H);
//   2. signs column by column with error feedback (GPTQ's update with the
//      damped H, columns in decreasing H_jj): S_rc = sign of the
//      compensated residual times M_rc;
//   3. U, then V, refitted by least squares in the H metric for those signs;
//   steps 2-3 repeated `rounds` times, keeping the best block seen;
//   (after block 0, a second candidate reuses block 0's magnitude times one
//   fitted scalar, a kBitStackKindScaledFirst block with no factors of its
//   own; the candidate that removes more output error per byte is kept. On
//   stories260K's wide layers this halves the bytes of deep blocks' factors
//   at the same error; on small ones fresh factors win.)
//   4. look-ahead (the blocks after block 0 and after step 5's stage): the block's
//      magnitude is scaled by the g >= 1 that minimises log E(this prefix)
//      + log E(the next prefix), the next block fitted as in 1-3. A greedy
//      block (g = 1) leaves a residual that sign planes fit poorly (many
//      small values, a few large ones); a slightly larger magnitude costs
//      little now and the following blocks remove much more.
//   5. designed stage: the first `depth` blocks are fitted together as one
//      depth-bit quantizer, the way GPTQ fits all bits of a code at once.
//      Block i (i < depth) takes the magnitude of 1-3 times the g in [1, 2]
//      that leaves the least error after the whole stage, and its signs are
//      the top signs of the nearest levels of the ladder ±m ± m/2 ± ... with
//      depth - i terms, the error fed forward being that of the ladder (see
//      choose_signs). Greedy blocks (depth 1) each minimise their own
//      prefix's error; the errors they feed forward are those of a 1-bit
//      quantizer, so after a few blocks each new one removes little (on
//      stories260K's w1 the output error falls by only x0.7-0.9 per block
//      from the fourth on). A designed stage gives up error in its shorter
//      prefixes for much less after it: on layers.1.ffn.w1, depth 4
//      against greedy blocks, relative output error 0.72 against 0.53 after
//      one block, 0.094 against 0.147 after four (and 0.039 against 0.069
//      after eight). g is searched per block because the ladder's range
//      must suit the residual: a fixed g = 1.4 at depth 3 gave stories260K
//      7.10 against 6.82 ppl at the Q4K model's bytes.
// Every block is fitted to the true residual of the blocks before it, so any
// prefix is a valid model.
struct BitStackHessian {
  const double* h = nullptr;  // [cols][cols]
  uint32_t rounds = 3;
  double damp = 0.01;         // sign selection: H + damp * mean(diag H) * I
  bool lookahead = true;
  uint32_t depth = 1;         // blocks in the designed stage (5 above); 1 = every block greedy
};
constexpr uint32_t kBitStackMaxDepth = 6;  // the ladder has 2^depth levels per weight

// `iters` blocks of W (rows x cols, row-major): S = sign(R) (0 -> +1),
// |R| ~ U^T V by rank-`rank` truncated SVD with U, V = sqrt(sigma) * vectors
// rounded to fp16, block = S ⊙ (U^T V), R -= block (with the rounded factors,
// so later blocks correct the rounding).
// col_weight (optional, [cols]) weights column j of the reported residuals.
// With `hessian`, blocks are fitted as BitStackHessian describes and the
// residuals are reported in its metric (col_weight is then unused).
std::vector<BitStackBlock> bitstack_decompose(const float* w, uint32_t rows, uint32_t cols, uint32_t iters,
                                              uint32_t rank, const double* col_weight = nullptr,
                                              const BitStackHessian* hessian = nullptr);

// Adds the dense weights of `b` to out[rows*cols].
void bitstack_block_accumulate(const BitStackBlock& b, uint32_t rows, uint32_t cols, float* out);

// Bytes a block adds to a budget: its section bytes without the 64-byte header.
uint64_t bitstack_block_bytes(const BitStackBlock& b, uint32_t rows, uint32_t cols);

// The block as the BitStackBlocks section stores it (header included).
std::vector<uint8_t> bitstack_encode_block(const BitStackBlock& b, uint32_t layer, TensorRole role, uint32_t index,
                                           uint32_t rows, uint32_t cols);

}  // namespace stk::host
