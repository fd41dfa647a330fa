// N:M-sparse variants of the random-weight bench models: `stk bench
// --formats 2:4-q8,2:4-q4,...` prunes every attention and MLP matrix of the
// synthetic model by magnitude and stores the kept values in the given format.
#pragma once
#include <string>

#include "tools/prune.h"
#include "tools/stk_writer.h"

namespace stk::bench {

struct SparseFormatName {
  host::SparsityPattern pattern;  // dense when the name has no "N:M-" prefix
  host::FormatSpec values;
};
// "q8" -> dense q8; "2:4-q4" -> 2:4 with q4 values. Throws std::invalid_argument.
SparseFormatName parse_sparse_format(const std::string& name);

// Replaces every per-layer matrix of `m` by its N:M-pruned (magnitude) form,
// values in `values` (low-bit values: plain min/max groups, as synth_model).
void sparsify_layers(host::PackedModel* m, host::SparsityPattern p, const host::FormatSpec& values);

}  // namespace stk::bench
