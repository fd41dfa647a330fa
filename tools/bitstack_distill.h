// End-to-end distillation of a BitStack model (host tool code): the
// magnitude factors of every residual block, the codes of the fixed low-bit
// tensors (the embedding; straight through the rounding to their group grid,
// as tools/distill.h trains low-bit codes) and the norm vectors are trained
// towards the f32 model, while the sign planes, the group grids and the
// global load order stay as the decomposition and quantization made them.
// The fixed tensors serve every budget, so they train at every drawn budget.
//
// A BitStack file serves every budget, so no single budget is the objective:
// each training step draws a prefix length of the load order uniformly
// between the minimum (every tensor's first block) and the full stack, builds
// each tensor from its blocks in that prefix, and follows the KL gradient back
// to the factors of exactly those blocks. Held-back stories are scored at a
// quarter, half, three quarters and all of the blocks beyond the minimum.
#pragma once
#include <cstdint>
#include <vector>

#include "tools/bitstack_decompose.h"
#include "tools/distill.h"
#include "tools/host_model.h"
#include "tools/lowbit_quant.h"

namespace stk::host {

// One decomposed tensor of the student model.
struct StackedTensor {
  size_t tensor = 0;                   // index into the student's tensors
  std::vector<float> in_scale;         // per input column; empty = ones
  std::vector<BitStackBlock>* blocks;  // updated in place (u, v, scale)
};

// A fixed (not decomposed) low-bit tensor of the student, e.g. the
// embedding: its codes are trained too, by a straight-through estimator on
// its group grid (the group parameters stay as quantized).
struct GridTensor {
  size_t tensor = 0;    // index into the student's tensors
  LowbitTensor* codes;  // updated in place (codes only)
};

// Trains in place: the blocks' factors, the grid tensors' codes and the
// student's norm vectors. load_order lists, for every block of the global
// order, the index into `stacked` of its tensor (each tensor's blocks in
// their own order).
DistillReport distill_bitstack(const HostModel& teacher, HostModel& student, std::vector<StackedTensor>& stacked,
                               std::vector<GridTensor>& grid, const std::vector<uint32_t>& load_order,
                               const std::vector<std::vector<int32_t>>& sequences, const DistillOptions& opt);

}  // namespace stk::host
