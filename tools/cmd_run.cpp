// stk run: generate text, printing exactly what llama2.c's run prints.
#include <chrono>
#include <cstdio>

#include "tools/commands.h"
#include "tools/handles.h"
#include "tools/budget_cli.h"

namespace stk::cli {
namespace {

int print_piece(void*, int32_t, const char* piece, size_t len) {
  if (stk_piece_is_printable(piece, len)) {
    std::fwrite(piece, 1, len, stdout);
    std::fflush(stdout);
  }
  return 0;
}

int run_run(const Args& a) {
  if (a.positional.size() != 1) throw UsageError("expected one MODEL");
  host::ModelHandle model(a.positional[0], a.get("--tokenizer"));
  stk_session_config cfg = STK_SESSION_CONFIG_INIT;
  cfg.n_threads = uint32_t(a.integer("--threads", 1, 1, 16));
  cfg.max_batch = 64;
  if (a.has("--budget")) cfg.max_budget_bytes = parse_size(a.get("--budget"));
  stk_sampler_config sc = STK_SAMPLER_CONFIG_INIT;
  sc.temperature = float(a.number("--temp", 1.0, 0.0, 100.0));
  sc.top_p = float(a.number("--topp", 0.9, 0.0, 1.0));
  sc.seed = a.has("--seed") ? uint64_t(a.integer("--seed", 0, 0, INT64_MAX))
                            : uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  const uint32_t steps = uint32_t(a.integer("-n", 256, 0, 1 << 20));
  const std::string prompt = a.get("--prompt");

  host::SessionHandle session(model, cfg);
  if (a.has("--budget")) host::report_budget(session.get(), cfg.max_budget_bytes);  // tools/budget_cli.h
  stk_generate_stats stats = STK_GENERATE_STATS_INIT;
  stk_message m{};
  host::check(stk_generate(session.get(), prompt.c_str(), steps, &sc, print_piece, nullptr, &stats, &m), m);
  std::printf("\n");
  std::fflush(stdout);
  // Decode speed excludes the prompt pass, as llama2.c's figure does.
  const double gen_s = double(stats.generate_ns) * 1e-9;
  std::fprintf(stderr,
               "achieved tok/s: %.1f (%u tokens after a %u-token prompt in %.1f ms; seed %llu; %u thread%s)\n"
               "arena bytes: %zu  weight bytes: %llu\n",
               gen_s > 0 ? double(stats.generated_tokens) / gen_s : 0.0, stats.generated_tokens,
               stats.prompt_tokens, double(stats.prompt_ns) * 1e-6, (unsigned long long)sc.seed, cfg.n_threads,
               cfg.n_threads == 1 ? "" : "s", session.arena_bytes(),
               (unsigned long long)model.info().weight_bytes);
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
        {"--tokenizer", "FILE", "llama2.c tokenizer.bin overriding the embedded one"},
    },
    run_run,
};

}  // namespace stk::cli
