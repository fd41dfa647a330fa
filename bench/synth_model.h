// Random-weight models with the shapes of real Llama checkpoints, packed in
// memory for benchmarks (the weights' values do not change the speed).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tools/lowbit_quant.h"
#include "tools/stk_writer.h"

namespace stk::bench {

struct ShapeSpec {
  std::string name;
  uint32_t dim, hidden, layers, heads, kv_heads, vocab;
  bool shared_classifier;
};
// "stories15M", "stories110M", "tinyllama"; throws std::invalid_argument.
ShapeSpec shape_by_name(const std::string& name);

// A packed model with every matrix in `spec` (round-to-nearest), norms 1.
// Generated tensor by tensor, so the float copy never exceeds one matrix.
host::PackedModel synth_model(const ShapeSpec& s, const host::FormatSpec& spec, uint32_t seq_len);

// Bytes of weights one decode step reads: every layer matrix plus the
// classifier (the embedding lookup reads one row).
uint64_t weight_bytes_per_token(const host::PackedModel& m);

}  // namespace stk::bench
