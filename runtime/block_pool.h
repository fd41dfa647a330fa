// The BitStack block pool: a session's resident residual blocks, a stack
// inside the session arena that always holds a prefix of the file's global
// load order. Raising the budget pushes the next blocks (copied from the model
// bytes), lowering it pops from the top; nothing else moves.
#pragma once
#include <cstdint>

#include "runtime/arena.h"
#include "runtime/bitstack_format.h"
#include "runtime/bitstack_index.h"
#include "runtime/model.h"
#include "runtime/status.h"

namespace stk {

// What a BitStack WeightView's data points at inside a session: the tensor's
// input scale and its resident blocks (the bytes after each block's header:
// sign plane first, then its factors).
struct BitStackTensor {
  const float* in_scale;  // [cols] f32, from the model bytes; null = all ones
  const uint8_t** blocks; // resident blocks in this tensor's order
  const BitStackBlockMeta* meta;  // every block's meta in this tensor's order (the model's index)
  uint32_t n_loaded;
  uint32_t rows, cols;
  bool signs16;           // sign planes in 16-row groups (runtime/bitstack_signs16.h)
};

// Block b (< n_loaded) of a tensor as the kernels read it: its sign plane
// and the fp16 factors of its magnitude, its own or, for a
// kBitStackKindScaledFirst block, block 0's times u_scale (the block index
// validated that block 0 is low-rank, of the same rank, and resident first).
struct BitStackBlockView {
  const uint8_t* signs;  // [rows][sign_row_bytes], or in 16-row groups when signs16
  const uint8_t* U;      // fp16 [rank][rows]
  const uint8_t* V;      // fp16 [rank][cols]
  uint32_t rank, sign_row_bytes;
  float u_scale;         // multiplies every U value
  bool signs16;
};

inline BitStackBlockView bitstack_block_view(const BitStackTensor& T, uint32_t b) {
  const BitStackBlockMeta& m = T.meta[b];
  const uint8_t* factors = m.kind == kBitStackKindScaledFirst ? T.blocks[0] : T.blocks[b];
  const BitStackFactorOffsets at = bitstack_factor_offsets(T.rows, T.cols, m.rank);
  BitStackBlockView v;
  v.signs = T.blocks[b];
  v.U = factors + at.u;
  v.V = factors + at.v;
  v.rank = m.rank;
  v.sign_row_bytes = (T.cols + 7) / 8;
  v.u_scale = m.scale;
  v.signs16 = T.signs16;
  return v;
}

struct BudgetReport {
  uint32_t blocks_loaded, blocks_dropped, blocks_resident;
  uint64_t bytes_loaded, bytes_dropped;
  uint64_t weight_bytes;  // fixed tensors + resident blocks after the change
};

// Called before each read of model bytes into the pool (one contiguous file
// range per budget increase); a non-zero return cancels the read and the
// budget change. The C API's stk_read_hook has the same signature.
struct ReadHook {
  int (*fn)(void* user, uint64_t file_offset, uint64_t bytes);
  void* user;
};

struct BlockPool {
  const Model* model;
  ReadHook hook;            // fn null = none
  const BitStackIndex* index;
  uint8_t* base;            // arena region: the resident prefix, in load order
  uint32_t capacity;        // longest prefix (blocks) the region holds
  uint32_t resident;        // current prefix length
  BitStackTensor* tensors;  // [index->n_slots]
  LayerWeights* layers;     // the model's layers with BitStack views pointing at `tensors`
  bool signs16;             // re-lay sign planes in 16-row groups where they apply
  uint8_t* scratch;         // signs16_scratch_bytes of the widest such plane
};

// Reserves the pool for budgets up to max_budget (0 = the full model) in the
// arena and, with real memory, fills it to that budget. For a model without
// BitStack tensors *out is null and nothing is reserved. Fails with
// Status::Budget when max_budget is below the model's minimum. signs16: lay
// sign planes out for a kernel set that reads them in 16-row groups
// (KernelSet::bitstack_signs16).
Status block_pool_plan(const Model& m, uint64_t max_budget, bool signs16, Arena* a, BlockPool** out, Message* msg);

// Re-lays the resident blocks' sign planes for a kernel set that reads them
// row-major (false) or in 16-row groups (true); later pushes follow. A pool
// planned without signs16 has no scratch for it and stays row-major, which
// every kernel reads.
void block_pool_use_signs16(BlockPool* p, bool signs16);

// Moves the resident prefix to the longest one within `budget` (clamped to
// the pool's capacity). Fails, changing nothing, below the minimum.
Status block_pool_set_budget(BlockPool* p, uint64_t budget, BudgetReport* report, Message* msg);

// The minimum and full budgets of a model (fixed bytes for non-BitStack models).
uint64_t model_min_budget(const Model& m);
uint64_t model_full_budget(const Model& m);

}  // namespace stk
