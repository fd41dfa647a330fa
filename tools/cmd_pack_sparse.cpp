// stk pack --sparsity N:M: N:M-pruned matrices (tools/prune.h).
#include <cstdio>

#include "runtime/weights.h"
#include "tools/calib.h"
#include "tools/commands.h"
#include "tools/prune.h"
#include "tools/story_ppl.h"

namespace stk::cli {

int run_pack_sparse(const Args& a, host::HostModel& hm, std::vector<uint8_t> tok_section) {
  if (a.has("--bpw")) throw UsageError("--bpw cannot be combined with --sparsity");
  host::PackPlanOptions o;
  o.base = host::parse_format_spec(a.get("--format", "q8"));
  for (const std::string& r : a.all("--layer")) o.rules.push_back(host::parse_layer_rule(r));
  o.threads = uint32_t(a.integer("--threads", 1, 1, 16));
  if (a.has("--calib")) {
    const size_t n = size_t(a.integer("--calib-stories", 64, 1, 1000000));
    o.calib = host::story_range(host::split_stories(read_text_file(a.get("--calib"))), 0, n);
    if (o.calib.empty()) throw std::runtime_error(a.get("--calib") + ": no calibration stories");
  }
  o.distill_epochs = uint32_t(a.integer("--distill", 0, 0, 1000));
  if (o.distill_epochs > 0 && o.calib.empty()) throw UsageError("--distill needs --calib TEXT");
  o.distill_samples = uint32_t(a.integer("--distill-samples", 0, 0, 1000000));
  if (o.distill_samples > 0 && o.distill_epochs == 0) throw UsageError("--distill-samples needs --distill EPOCHS");
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
