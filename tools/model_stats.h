// Small measurements of an opened model and story selection shared by
// `stk info`, `stk ppl` and the bench.
#pragma once
#include <string>
#include <vector>

#include "c_api/stackrt.h"

namespace stk::host {

// Bits per weight over all matrices (every tensor except the norm vectors),
// scales and padding included; for a BitStack model, `block_bytes` are the
// resident residual blocks (they belong to its matrices too).
double model_linear_bpw(const stk_model* model, uint64_t block_bytes = 0);

// The format of tensor `index` as --format/--layer spell it: "q8", "q4",
// "q3g64" (low-bit formats with a group other than 32 carry a suffix).
std::string tensor_format_label(const stk_model* model, uint32_t index);

// "A:B" -> stories [A, B) ("A:" to the end, ":B" from the start). Throws
// std::invalid_argument on a malformed range.
std::vector<std::string> select_stories(const std::vector<std::string>& all, const std::string& range);

}  // namespace stk::host
