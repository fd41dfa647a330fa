// stk pack: llama2.c checkpoint + tokenizer.bin -> .stk
#include <cstdio>

#include "runtime/weights.h"
#include "tools/commands.h"
#include "tools/llama2c_import.h"
#include "tools/pack.h"
#include "tools/pack_flags.h"
#include "tools/pack_plan.h"
#include "tools/quantize.h"
#include "tools/stk_writer.h"

namespace stk::cli {

int run_pack_bitstack(const Args& a);
int run_pack_sparse(const Args& a, host::HostModel& hm, std::vector<uint8_t> tok_section);
namespace {

int run_pack(const Args& a) {
  if (a.positional.size() != 2) throw UsageError("expected IN and OUT");
  if (!a.has("--tokenizer")) throw UsageError("--tokenizer FILE is required (the llama2.c tokenizer.bin to embed)");
  if (a.get("--format") == "bitstack") return run_pack_bitstack(a);  // tools/cmd_pack_bitstack.cpp
  const host::FormatSpec spec = host::parse_format_spec(a.get("--format", "q8"));
  const WeightFormat format = spec.format;
  const std::string& in = a.positional[0];
  const std::string& out = a.positional[1];

  host::HostModel hm = host::import_llama2c(in);
  const std::string tok_path = a.get("--tokenizer");
  std::vector<uint8_t> tok_section =
      host::tokenizer_section_from_llama2c(host::read_file(tok_path), hm.config.vocab_size, tok_path);
  if (a.has("--sparsity")) return run_pack_sparse(a, hm, std::move(tok_section));  // tools/cmd_pack_sparse.cpp
  host::PackedModel pm;
  if (a.has("--layer") || a.has("--bpw") || a.has("--calib") || spec.group != 0) {
    // Per-tensor plan: rules, budget, RTN or calibrated GPTQ (tools/pack_plan.h).
    host::PackPlanOptions o;
    o.base = spec;
    for (const std::string& r : a.all("--layer")) o.rules.push_back(host::parse_layer_rule(r));
    o.bpw = a.number("--bpw", 0, 0.5, 32);
    o.joint_evals = uint32_t(a.integer("--bpw-search", 0, 0, 100000));
    if (a.has("--bpw-candidates")) o.candidates = host::parse_format_list(a.get("--bpw-candidates"));
    o.threads = uint32_t(a.integer("--threads", 1, 1, 16));
    CalibFlags cf = parse_calib_flags(a);
    o.calib = std::move(cf.calib);
    o.distill_epochs = cf.distill_epochs;
    o.distill_samples = cf.distill_samples;
    const std::string groups = a.get("--gptq-groups", "static");
    if (groups != "static" && groups != "dynamic") throw UsageError("--gptq-groups expects static or dynamic");
    o.gptq.dynamic_groups = groups == "dynamic";
    o.gptq.act_order = a.get("--gptq-order", "act") == "act";
    o.log = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
    pm = host::pack_with_plan(hm, std::move(tok_section), o);
    std::fprintf(stderr, "linear_bpw %.4f (%s)\n", host::linear_bpw(pm), o.calib.empty() ? "round-to-nearest" : "calibrated GPTQ");
  } else {
    pm = host::pack_uniform(hm, std::move(tok_section), format);
  }
  std::vector<uint8_t> bytes = host::serialize_stk(pm);
  host::write_file_atomic(out, bytes);
  std::fprintf(stderr, "packed %s (%s) -> %s: %zu tensors, format %s, %zu bytes\n", in.c_str(),
               hm.source_format.c_str(), out.c_str(), pm.tensors.size(), weight_format_name(format), bytes.size());
  return 0;
}

}  // namespace

const Command kPackCommand = {
    "pack",
    "IN OUT --tokenizer TOK [--format F] [--layer PATTERN=F]... [--bpw B] [--calib TEXT]",
    "Pack a llama2.c checkpoint (legacy, export v1, or export v2 int8) into a self-contained .stk model.",
    {
        {"--tokenizer", "FILE", "llama2.c tokenizer.bin to embed (required)"},
        {"--format", "F", "weight format for matrices: f32, q8, q4, q3, q2, t2 (optional group suffix, e.g. q4g64; default group 32), q4k, q3k, q2k, t2k (quantized group scales; default group 16, e.g. q3kg32); default q8; norms stay f32"},
        {"--layer", "PATTERN=F", "format for matrices whose name (as `stk info` prints it) matches the glob; repeatable, last match wins"},
        {"--bpw", "B", "choose formats of the other matrices so the average bits per matrix weight is <= B (lowest calibration loss, greedy)"},
        {"--bpw-search", "N", "with --bpw and --calib: refine the greedy choice by N whole-model KL evaluations of mutated allocations (default 0)"},
        {"--bpw-candidates", "LIST", "formats --bpw may choose, comma-separated (default: those of q8,q4k,q4kg32,q3k,q3kg32,q2k,q2kg32,t2k from 0.5 bit below B to 1 bit above, e.g. q4k,q4kg32,q3k,q3kg32 for --bpw 4)"},
        {"--calib", "TEXT", "calibrate: GPTQ (act-order, Hessian from stackrt's own activations, clip search) instead of round-to-nearest"},
        {"--calib-stories", "N", "calibrate on the first N stories of TEXT (default 64)"},
        {"--threads", "T", "threads for calibration runs (default 1)"},
        {"--gptq-groups", "static|dynamic", "group (d, m) from the original weights (default) or fitted when GPTQ reaches the group"},
        {"--gptq-order", "act|natural", "GPTQ column order: decreasing Hessian diagonal (default) or natural"},
        {"--sparsity", "N:M", "prune every attention and MLP matrix to N:M (1 <= N < M <= 16) along the input; kept values in --format (f32, q8, q4...)"},
        {"--prune", "METHOD", "sparsity: magnitude (default), wanda or sparsegpt (these two need --calib)"},
        {"--distill", "EPOCHS", "with --calib: afterwards train end to end towards the f32 model on the calibration text, at most EPOCHS passes (low-bit: codes on their group grid and norms; sparse: kept weights and norms; bitstack: block factors, the low-bit embedding's codes and norms, over random budgets)"},
        {"--distill-samples", "N", "with --distill: also train on N stories sampled from the f32 model (temperature 1, seed 1), for more text than the calibration file holds (default 0; on stories260K 192 took --bpw 3.0 from +97% to +39% of f32 ppl, see README)"},
        {"--sparse-layer", "PATTERN=N:M", "sparsity for matrices matching the glob ('dense' keeps them dense); repeatable, last wins"},
        {"--iters", "N", "bitstack: residual blocks per linear layer (default 8)"},
        {"--rank", "K", "bitstack: rank of each block's magnitude (default: per matrix, factors <= 1/8 of the sign bytes)"},
        {"--fixed-format", "F", "bitstack: format of the embedding/classifier (default q4k; with --calib fitted by GPTQ to the classifier output)"},
        {"--order", "O", "bitstack: block load order: measured (default with --calib), nll (the paper's measure; slow), gain (proxy) or uniform"},
        {"--alpha", "A", "bitstack: activation-scale exponent, s = E[x^2]^(A/2) (default 1; 0 = off)"},
        {"--fit", "output|weights", "bitstack with --calib: fit blocks to the layer's output error (default) or to its weights"},
        {"--fit-rounds", "N", "bitstack: sign/magnitude refinement rounds per block with --fit output (default 3)"},
        {"--depth", "D", "bitstack with --fit output: fit each matrix's first D blocks together as one D-bit quantizer (1..6, default 3; each depth serves best the budgets where matrices hold about D blocks: on stories260K 2 around 3 bits per linear weight, 3 around 4, 4 from 5 up; 1 = greedy blocks, best at the smallest budgets)"},
    },
    run_pack,
};

}  // namespace stk::cli
