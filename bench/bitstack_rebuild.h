// The other way to run a BitStack model: rebuild every matrix dense from its
// resident blocks before each product, then multiply with a dense float
// kernel. This is what the BitStack paper's reference implementation does on
// every forward pass; stk bench times it to show what computing on the packed
// blocks saves.
#pragma once
#include <cstdint>
#include <vector>

#include "bench/synth_bitstack.h"
#include "runtime/kernels/matmul.h"

namespace stk::bench {

// Decode tokens per second of the linear layers alone (no attention, norms or
// classifier) when each matrix is rebuilt from its first resident[i] blocks
// for every token and multiplied with the f32 kernel of `kernels`, one
// thread. Timed over `tokens` tokens.
double dense_rebuild_tok_s(const std::vector<MatrixBlocks>& matrices, const std::vector<uint32_t>& resident,
                           uint32_t tokens, const KernelSet& kernels);

// Blocks of each matrix resident after `total` blocks of the uniform load
// order of synth_bitstack (block b of every matrix, then b + 1).
std::vector<uint32_t> uniform_resident(size_t matrices, uint32_t total);

}  // namespace stk::bench
