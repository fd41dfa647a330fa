// Host-side encoders: float tensors to the on-disk bytes of a weight format.
// Decoding lives in the runtime (runtime/weights.h), so a round trip tests
// the two against each other.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/format.h"
#include "tools/host_model.h"

namespace stk::host {

// Encodes rows x cols floats (row-major) in `format`; fills params[4].
// Throws std::invalid_argument for a format this packer cannot produce.
std::vector<uint8_t> encode_weights(const float* w, uint32_t rows, uint32_t cols, WeightFormat format,
                                    uint32_t params[4]);

// Parses "f32", "q8", ... (the names weight_format_name() prints).
WeightFormat parse_weight_format(const std::string& name);

}  // namespace stk::host
