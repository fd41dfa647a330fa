// The BitStack block pool: a session's resident residual blocks, a stack
// inside the session arena that always holds a prefix of the file's global
// load order. Raising the budget pushes the next blocks (copied from the model
// bytes), lowering it pops from the top; nothing else moves.
#pragma once
#include <cstdint>

#include "runtime/arena.h"
#include "runtime/bitstack_index.h"
#include "runtime/model.h"
#include "runtime/status.h"

namespace stk {

// What a BitStack WeightView's data points at inside a session: the tensor's
// input scale and its resident blocks (each starts with BitStackBlockHeader).
struct BitStackTensor {
  const float* in_scale;  // [cols] f32, from the model bytes; null = all ones
  const uint8_t** blocks; // resident blocks in this tensor's order
  uint32_t n_loaded;
  uint32_t rows, cols;
};

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
};

// Reserves the pool for budgets up to max_budget (0 = the full model) in the
// arena and, with real memory, fills it to that budget. For a model without
// BitStack tensors *out is null and nothing is reserved. Fails with
// Status::Budget when max_budget is below the model's minimum.
Status block_pool_plan(const Model& m, uint64_t max_budget, Arena* a, BlockPool** out, Message* msg);

// Moves the resident prefix to the longest one within `budget` (clamped to
// the pool's capacity). Fails, changing nothing, below the minimum.
Status block_pool_set_budget(BlockPool* p, uint64_t budget, BudgetReport* report, Message* msg);

// The minimum and full budgets of a model (fixed bytes for non-BitStack models).
uint64_t model_min_budget(const Model& m);
uint64_t model_full_budget(const Model& m);

}  // namespace stk
