#include "bench/synth_sparse.h"

#include "runtime/weights.h"
#include "tools/host_model.h"

namespace stk::bench {

SparseFormatName parse_sparse_format(const std::string& name) {
  SparseFormatName f;
  const size_t dash = name.find('-');
  if (name.find(':') == std::string::npos || dash == std::string::npos) {
    f.values = host::parse_format_spec(name);
    return f;
  }
  f.pattern = host::parse_sparsity(name.substr(0, dash));
  f.values = host::parse_format_spec(name.substr(dash + 1));
  return f;
}

void sparsify_layers(host::PackedModel* m, host::SparsityPattern p, const host::FormatSpec& values) {
  for (host::PackedTensor& t : m->tensors) {
    if (t.rows <= 1 || !host::is_per_layer_role(t.role)) continue;
    const WeightView v{t.format, t.rows, t.cols, t.data.data(), t.data.size(),
                       {t.params[0], t.params[1], t.params[2], t.params[3]}};
    std::vector<float> w(size_t(t.rows) * t.cols);
    for (uint32_t r = 0; r < t.rows; ++r) weight_dequantize_row(v, r, w.data() + size_t(r) * t.cols);
    const std::vector<uint8_t> mask = host::prune_magnitude(w.data(), t.rows, t.cols, p);
    t.data = host::encode_sparse(w.data(), mask.data(), t.rows, t.cols, p, values, t.params, false);
    t.format = WeightFormat::Sparse;
  }
}

}  // namespace stk::bench
