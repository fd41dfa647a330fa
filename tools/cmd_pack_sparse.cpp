// stk pack --sparsity N:M: N:M-pruned matrices (tools/prune.h).
#include <cstdio>

#include "runtime/weights.h"
#include "tools/commands.h"
#include "tools/pack_flags.h"
#include "tools/prune.h"

namespace stk::cli {

int run_pack_sparse(const Args& a, host::HostModel& hm, std::vector<uint8_t> tok_section) {
  if (a.has("--bpw")) throw UsageError("--bpw cannot be combined with --sparsity");
  host::PackPlanOptions o;
  o.base = host::parse_format_spec(a.get("--format", "q8"));
  for (const std::string& r : a.all("--layer")) o.rules.push_back(host::parse_layer_rule(r));
  o.threads = uint32_t(a.integer("--threads", 1, 1, 16));
  CalibFlags cf = parse_calib_flags(a);
  o.calib = std::move(cf.calib);
  o.distill_epochs = cf.distill_epochs;
  o.distill_samples = cf.distill_samples;
  o.log = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
  host::SparsePackOptions sp;
  sp.pattern = host::parse_sparsity(a.get("--sparsity"));
  sp.method = host::parse_prune_method(a.get("--prune", "magnitude"));
  for (const std::string& r : a.all("--sparse-layer")) {
    const size_t eq = r.rfind('=');
    if (eq == std::string::npos || eq == 0) throw UsageError("--sparse-layer '" + r + "': expected PATTERN=N:M");
    sp.rules.emplace_back(r.substr(0, eq), host::parse_sparsity(r.substr(eq + 1)));
  }
  if (host::needs_calibration(sp.method) && o.calib.empty()) {
    throw UsageError(std::string("--prune ") + host::prune_method_name(sp.method) + " needs --calib TEXT");
  }
  host::PackedModel pm = host::pack_sparse(hm, std::move(tok_section), o, sp);
  std::vector<uint8_t> bytes = host::serialize_stk(pm);
  const std::string& out = a.positional[1];
  host::write_file_atomic(out, bytes);
  std::fprintf(stderr, "linear_bpw %.4f (%s %s, values %s)\n", host::linear_bpw(pm), sp.pattern.name().c_str(),
               host::prune_method_name(sp.method), o.base.name().c_str());
  std::fprintf(stderr, "packed %s (%s) -> %s: %zu tensors, %zu bytes\n", a.positional[0].c_str(),
               hm.source_format.c_str(), out.c_str(), pm.tensors.size(), bytes.size());
  return 0;
}

}  // namespace stk::cli
