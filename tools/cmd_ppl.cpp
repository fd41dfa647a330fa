// stk ppl: story perplexity (the protocol of ../shared/models/README.md).
#include <cstdio>

#include "tools/commands.h"
#include "tools/handles.h"
#include "tools/budget_cli.h"
#include "tools/model_stats.h"
#include "tools/story_ppl.h"

namespace stk::cli {
namespace {

int run_ppl(const Args& a) {
  if (a.positional.size() != 1) throw UsageError("expected one MODEL");
  if (!a.has("--text")) throw UsageError("--text FILE is required");
  host::ModelHandle model(a.positional[0], a.get("--tokenizer"));
  std::vector<std::string> stories = host::split_stories(read_text_file(a.get("--text")));
  if (a.has("--stories")) stories = host::select_stories(stories, a.get("--stories"));
  if (stories.empty()) throw std::runtime_error(a.get("--text") + ": no text to score");

  stk_session_config cfg = STK_SESSION_CONFIG_INIT;
  cfg.n_threads = uint32_t(a.integer("--threads", 1, 1, 16));
  cfg.max_batch = 64;
  if (a.has("--scalar-kernels")) cfg.flags |= STK_SESSION_SCALAR_KERNELS;
  if (a.has("--budget")) cfg.max_budget_bytes = parse_size(a.get("--budget"));
  host::SessionHandle session(model, cfg);
  // A BitStack model's weights are its fixed tensors plus the resident blocks.
  const stk_model_info& info = model.info();
  uint64_t weight_bytes = info.weight_bytes, block_bytes = 0;
  stk_budget_info bi = STK_BUDGET_INFO_INIT;
  stk_message msg{};
  host::check(stk_model_budget_info(model.get(), &bi, &msg), msg);
  if (a.has("--budget") || bi.n_blocks > 0) {
    const stk_budget_report br = host::report_budget(session.get(), cfg.max_budget_bytes);  // tools/budget_cli.h
    block_bytes = br.weight_bytes - weight_bytes;
    weight_bytes = br.weight_bytes;
  }
  Progress bar("scoring", stories.size());
  host::PplResult r =
      host::score_stories(model.get(), session.get(), stories, [&](size_t d, size_t) { bar.update(d); });
  bar.finish();
  std::printf("stories %zu  predictions %llu  mean_nll %.6f  ppl %.6f\n", stories.size(),
              (unsigned long long)r.predictions, r.mean_nll(), r.ppl());
  std::fprintf(stderr, "%.1f tokens/s scored; weight bytes %llu; arena bytes %zu\n",
               r.seconds > 0 ? double(r.predictions) / r.seconds : 0.0, (unsigned long long)weight_bytes,
               session.arena_bytes());
  if (a.has("--json")) {
    std::printf(
        "{\"ppl\": %.6f, \"mean_nll\": %.6f, \"predictions\": %llu, \"stories\": %zu, \"weight_bytes\": %llu, "
        "\"arena_bytes\": %zu, \"tokens_per_s\": %.1f, \"threads\": %u, \"linear_bpw\": %.4f}\n",
        r.ppl(), r.mean_nll(), (unsigned long long)r.predictions, stories.size(),
        (unsigned long long)weight_bytes, session.arena_bytes(), r.seconds > 0 ? double(r.predictions) / r.seconds : 0.0,
        cfg.n_threads, host::model_linear_bpw(model.get(), block_bytes));
  }
  return 0;
}

}  // namespace

const Command kPplCommand = {
    "ppl",
    "MODEL --text FILE [options]",
    "Story perplexity: split FILE at blank lines, score every next-token prediction, report exp(mean NLL).",
    {
        {"--text", "FILE", "text to score (required)"},
        {"--threads", "T", "worker threads including the caller (default 1)"},
        {"--budget", "SIZE", "BitStack RAM budget for weights (bytes, or KB/MB/KiB/MiB): the longest block prefix within it"},
        {"--stories", "A:B", "score only stories A..B-1 of FILE (e.g. 64: skips the first 64, used for calibration)"},
        {"--json", nullptr, "also print one JSON object as the last stdout line"},
        {"--scalar-kernels", nullptr, "use the portable scalar kernels (slow): the ppl a device without SIMD kernels gets, and a reference for the SIMD kernels' rounding"},
        {"--tokenizer", "FILE", "llama2.c tokenizer.bin overriding the embedded one"},
    },
    run_ppl,
};

}  // namespace stk::cli
