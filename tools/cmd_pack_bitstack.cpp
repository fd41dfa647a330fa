// stk pack --format bitstack: the BitStack branch of `stk pack`.
#include <cstdio>

#include "tools/bitstack_decompose.h"
#include "tools/bitstack_pack.h"
#include "tools/cli.h"
#include "tools/llama2c_import.h"
#include "tools/pack.h"
#include "tools/pack_flags.h"
#include "tools/quantize.h"

namespace stk::cli {

int run_pack_bitstack(const Args& a) {
  const std::string& in = a.positional[0];
  const std::string& out = a.positional[1];
  host::HostModel hm = host::import_llama2c(in);
  const std::string tok_path = a.get("--tokenizer");
  std::vector<uint8_t> tok = host::tokenizer_section_from_llama2c(host::read_file(tok_path), hm.config.vocab_size, tok_path);
  host::BitStackPackOptions o;
  o.iters = uint32_t(a.integer("--iters", 8, 1, 64));
  o.rank = uint32_t(a.integer("--rank", 0, 0, 64));
  o.alpha = a.number("--alpha", 1.0, 0.0, 4.0);
  o.threads = uint32_t(a.integer("--threads", 1, 1, 16));
  if (a.has("--fixed-format")) o.fixed_format = host::parse_weight_format(a.get("--fixed-format"));
  if (a.has("--order")) o.order = a.get("--order");
  if (a.has("--fit")) {
    const std::string f = a.get("--fit");
    if (f != "output" && f != "weights") throw UsageError("--fit must be output or weights");
    o.output_fit = f == "output";
  }
  o.fit_rounds = uint32_t(a.integer("--fit-rounds", 3, 1, 32));
  o.depth = uint32_t(a.integer("--depth", o.depth, 1, host::kBitStackMaxDepth));
  if (o.order != "gain" && o.order != "uniform" && o.order != "measured" && o.order != "nll") {
    throw UsageError("--order must be measured, nll, gain or uniform");
  }
  if (o.order == "nll" && !a.has("--calib")) throw UsageError("--order nll needs --calib TEXT");
  CalibFlags cf = parse_calib_flags(a);
  o.calib = std::move(cf.calib);
  o.distill_epochs = cf.distill_epochs;
  o.distill_samples = cf.distill_samples;
  if (o.calib.empty()) {
    std::fprintf(stderr, "warning: no --calib: no activation scaling, blocks ordered by unweighted residual\n");
  }
  o.log = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
  host::PackedModel pm = host::pack_bitstack(hm, std::move(tok), o);
  std::vector<uint8_t> bytes = host::serialize_stk(pm);
  host::write_file_atomic(out, bytes);
  std::fprintf(stderr,
               "packed %s -> %s: bitstack, %u blocks per linear layer, %zu block bytes with their headers, %zu bytes"
               " (budgets: stk info)\n",
               in.c_str(), out.c_str(), o.iters, pm.bitstack_blocks.size(), bytes.size());
  return 0;
}

}  // namespace stk::cli
