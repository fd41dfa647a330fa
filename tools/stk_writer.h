// Serialises a packed model to the .stk layout of runtime/format.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/format.h"
#include "tools/host_model.h"

namespace stk::host {

struct PackedTensor {
  std::string name;
  TensorRole role;
  uint32_t layer;
  uint32_t rows, cols;
  WeightFormat format;
  uint32_t params[4];
  std::vector<uint8_t> data;  // exactly weight_format_bytes() long
};

struct PackedModel {
  HostConfig config;
  std::vector<PackedTensor> tensors;
  std::vector<uint8_t> tokenizer_section;  // runtime/tokenizer.h layout
  // BitStack residual blocks in global load order (runtime/bitstack_format.h);
  // written as a BitStackBlocks section after the weights when not empty.
  std::vector<uint8_t> bitstack_blocks;
};

// The complete file image: header, section table, tensor table, tokenizer,
// weights; every section and tensor 64-byte aligned; all CRCs filled in.
std::vector<uint8_t> serialize_stk(const PackedModel& model);

// Writes via a temporary file and rename, so a failed pack never leaves a
// half-written model under the final name. Throws std::runtime_error.
void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace stk::host
