// stk run: generate text, printing exactly what llama2.c's run prints.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "tools/budget_cli.h"
#include "tools/commands.h"
#include "tools/handles.h"
#include "tools/sim_trace.h"

namespace stk::cli {
namespace {

// --budget-at: budget changes at given positions, applied from the piece
// callback (between two evaluations, where stk_generate allows them).
struct BudgetChanges {
  stk_session* session = nullptr;
  std::vector<host::BudgetChange> changes;  // by step, increasing
  size_t next = 0;
  uint64_t weight_bytes = 0;  // resident now (fixed tensors + blocks)
  bool failed = false;  // a change the runtime refused (message printed)
  uint32_t pieces = 0;  // pieces printed: piece k is the token at position k (BOS is at 0)
};

int print_piece(void* user, int32_t, const char* piece, size_t len) {
  if (stk_piece_is_printable(piece, len)) {
    std::fwrite(piece, 1, len, stdout);
    std::fflush(stdout);
  }
  BudgetChanges* bc = static_cast<BudgetChanges*>(user);
  // A generated piece is evaluated right after this call, at its own
  // position; the prompt was evaluated before its first piece, so a change
  // inside the prompt takes effect from the first generated token.
  const uint32_t next_pos = ++bc->pieces;
  while (bc->next < bc->changes.size() && bc->changes[bc->next].step <= next_pos) {
    const host::BudgetChange& c = bc->changes[bc->next++];
    stk_budget_report r = STK_BUDGET_REPORT_INIT;
    stk_message m{};
    if (stk_session_set_budget(bc->session, c.budget, &r, &m) != STK_OK) {
      std::fprintf(stderr, "\nstk run: position %u: %s\n", next_pos, m.text);
      bc->failed = true;
      return 1;
    }
    bc->weight_bytes = r.weight_bytes;
    std::fprintf(stderr,
                 "\n[position %u: budget %llu: loaded %u blocks (%llu bytes), dropped %u (%llu bytes); %u resident, "
                 "weight bytes %llu]\n",
                 next_pos, (unsigned long long)c.budget, r.blocks_loaded, (unsigned long long)r.bytes_loaded,
                 r.blocks_dropped, (unsigned long long)r.bytes_dropped, r.blocks_resident,
                 (unsigned long long)r.weight_bytes);
  }
  return 0;
}

// "STEP:BUDGET" with BUDGET as `stk sim` reads it (a size, min, full or P%).
host::BudgetChange parse_budget_at(const std::string& text, const stk_budget_info& bi) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0) throw UsageError("--budget-at expects STEP:BUDGET, got '" + text + "'");
  const std::string step = text.substr(0, colon);
  if (step.find_first_not_of("0123456789") != std::string::npos || step.size() > 9) {
    throw UsageError("--budget-at: bad position '" + step + "' in '" + text + "'");
  }
  try {
    const uint64_t b = host::resolve_budget(host::parse_budget_spec(text.substr(colon + 1)), bi.min_budget_bytes,
                                            bi.full_budget_bytes);
    return host::BudgetChange{std::stoull(step), b};
  } catch (const std::runtime_error& e) {
    throw UsageError("--budget-at '" + text + "': " + e.what());
  }
}

int run_run(const Args& a) {
  if (a.positional.size() != 1) throw UsageError("expected one MODEL");
  host::ModelHandle model(a.positional[0], a.get("--tokenizer"));
  stk_session_config cfg = STK_SESSION_CONFIG_INIT;
  cfg.n_threads = uint32_t(a.integer("--threads", 1, 1, 16));
  cfg.max_batch = 64;
  if (a.has("--scalar-kernels")) cfg.flags |= STK_SESSION_SCALAR_KERNELS;
  if (a.has("--budget")) cfg.max_budget_bytes = parse_size(a.get("--budget"));
  BudgetChanges bc;
  if (a.has("--budget-at")) {
    stk_budget_info bi = STK_BUDGET_INFO_INIT;
    stk_message m{};
    host::check(stk_model_budget_info(model.get(), &bi, &m), m);
    if (bi.n_blocks == 0) throw UsageError("--budget-at needs a BitStack model (stk pack --format bitstack)");
    for (const std::string& t : a.all("--budget-at")) {
      bc.changes.push_back(parse_budget_at(t, bi));
      if (bc.changes.back().budget < bi.min_budget_bytes) {
        throw UsageError("--budget-at '" + t + "': below the model's minimum budget of " +
                         std::to_string(bi.min_budget_bytes) + " bytes");
      }
    }
    std::stable_sort(bc.changes.begin(), bc.changes.end(),
                     [](const host::BudgetChange& x, const host::BudgetChange& y) { return x.step < y.step; });
    // The arena holds the largest budget the run will ask for.
    const uint64_t start = a.has("--budget") ? cfg.max_budget_bytes : bi.full_budget_bytes;
    uint64_t most = start;
    for (const host::BudgetChange& c : bc.changes) most = std::max(most, c.budget);
    cfg.max_budget_bytes = most;
  }
  stk_sampler_config sc = STK_SAMPLER_CONFIG_INIT;
  sc.temperature = float(a.number("--temp", 1.0, 0.0, 100.0));
  sc.top_p = float(a.number("--topp", 0.9, 0.0, 1.0));
  sc.seed = a.has("--seed") ? uint64_t(a.integer("--seed", 0, 0, INT64_MAX))
                            : uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  const uint32_t steps = uint32_t(a.integer("-n", 256, 0, 1 << 20));
  const std::string prompt = a.get("--prompt");

  host::SessionHandle session(model, cfg);
  bc.session = session.get();
  if (a.has("--budget")) {  // tools/budget_cli.h
    bc.weight_bytes = host::report_budget(session.get(), parse_size(a.get("--budget"))).weight_bytes;
  } else {  // what init made resident: asking for everything again moves nothing
    stk_budget_report r = STK_BUDGET_REPORT_INIT;
    stk_message m{};
    host::check(stk_session_set_budget(session.get(), UINT64_MAX, &r, &m), m);
    bc.weight_bytes = r.weight_bytes;
  }
  stk_generate_stats stats = STK_GENERATE_STATS_INIT;
  stk_message m{};
  host::check(stk_generate(session.get(), prompt.c_str(), steps, &sc, print_piece, &bc, &stats, &m), m);
  std::printf("\n");
  std::fflush(stdout);
  if (bc.failed) return 1;
  // Decode speed excludes the prompt pass, as llama2.c's figure does.
  const double gen_s = double(stats.generate_ns) * 1e-9;
  std::fprintf(stderr,
               "achieved tok/s: %.1f (%u tokens after a %u-token prompt in %.1f ms; seed %llu; %u thread%s)\n"
               "arena bytes: %zu  weight bytes: %llu\n",
               gen_s > 0 ? double(stats.generated_tokens) / gen_s : 0.0, stats.generated_tokens,
               stats.prompt_tokens, double(stats.prompt_ns) * 1e-6, (unsigned long long)sc.seed, cfg.n_threads,
               cfg.n_threads == 1 ? "" : "s", session.arena_bytes(),
               (unsigned long long)bc.weight_bytes);
  return 0;
}

}  // namespace

const Command kRunCommand = {
    "run",
    "MODEL [options]",
    "Generate text. stdout is the text (as llama2.c's run prints it); speed and memory go to stderr.",
    {
        {"--prompt", "P", "text to start from (default: empty, i.e. BOS only)"},
        {"-n", "N", "positions to fill, prompt included, as llama2.c's -n (default 256; 0 = context length)"},
        {"--temp", "T", "sampling temperature; 0 = greedy (default 1.0)"},
        {"--topp", "P", "nucleus sampling mass in (0,1); 0 or 1 = off (default 0.9)"},
        {"--seed", "S", "random seed (default: from the clock, printed on stderr)"},
        {"--threads", "T", "worker threads including the caller (default 1)"},
        {"--budget", "SIZE", "BitStack RAM budget for weights (bytes, or KB/MB/KiB/MiB): the longest block prefix within it"},
        {"--budget-at", "STEP:BUDGET", "change the budget before the token at position STEP (BOS = 0, as -n counts) is evaluated; BUDGET: a size, min, full or P% of the range; repeatable"},
        {"--tokenizer", "FILE", "llama2.c tokenizer.bin overriding the embedded one"},
        {"--scalar-kernels", nullptr, "use the portable scalar kernels: slower, but the same arithmetic as on any device (e.g. the Cortex-M build), so the same tokens"},
    },
    run_run,
};

}  // namespace stk::cli
