// Random-weight BitStack models with the shapes of real checkpoints, for
// timing decode at a RAM budget (the values do not change the speed).
#pragma once
#include <cstdint>
#include <vector>

#include "bench/synth_model.h"
#include "tools/bitstack_decompose.h"

namespace stk::bench {

// The random blocks of one layer matrix, in its own order.
struct MatrixBlocks {
  uint32_t rows, cols;
  std::vector<host::BitStackBlock> blocks;
};

struct SynthBitStack {
  host::PackedModel model;
  std::vector<MatrixBlocks> matrices;  // the model's blocks before encoding, in tensor order
};

// Embedding and classifier Q4K (the BitStack packer's default), norms 1, and
// every layer matrix as `blocks` random sign blocks (fp16 factors at the
// packer's default rank), stored in a uniform load order (block b of every
// matrix, then b + 1).
SynthBitStack synth_bitstack(const ShapeSpec& s, uint32_t seq_len, uint32_t blocks);

// Bytes of every tensor of a model without BitStack blocks: the budget at
// which a BitStack model holds as many weight bytes.
uint64_t total_weight_bytes(const host::PackedModel& m);

}  // namespace stk::bench
