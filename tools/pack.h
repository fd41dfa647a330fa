// The packing pipeline shared by `stk pack`, the tests and the benchmarks:
// a float HostModel plus a tokenizer becomes a PackedModel ready to serialise.
#pragma once
#include <string>
#include <vector>

#include "runtime/format.h"
#include "tools/host_model.h"
#include "tools/stk_writer.h"

namespace stk::host {

// The tokenizer section (runtime/tokenizer.h layout) built from the bytes of a
// llama2.c tokenizer.bin. Throws std::runtime_error naming `origin`.
std::vector<uint8_t> tokenizer_section_from_llama2c(const std::vector<uint8_t>& tok_bin, uint32_t vocab_size,
                                                    const std::string& origin);

// Encodes every matrix of `model` in `format`; norm vectors stay f32 (they are
// tiny and scale every activation).
PackedModel pack_uniform(const HostModel& model, std::vector<uint8_t> tokenizer_section, WeightFormat format);

}  // namespace stk::host
