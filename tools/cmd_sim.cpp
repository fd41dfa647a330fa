// stk sim: RAM-budget simulation. Scores a text with story ppl while a trace
// changes the BitStack budget, and models what each change costs on a
// storage device (tools/sim_run.h, tools/sim_trace.h, ports/sim/sim_storage.h).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>

#include "tools/commands.h"
#include "tools/handles.h"
#include "tools/model_stats.h"
#include "tools/sim_report.h"
#include "tools/sim_run.h"
#include "tools/sim_trace.h"
#include "tools/story_ppl.h"

namespace stk::cli {
namespace {

std::string base_name(const std::string& p) {
  const size_t s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

sim::StorageModel storage_from_args(const Args& a) {
  const bool custom = a.has("--read-mbps") || a.has("--latency-us") || a.has("--read-size");
  if (custom && a.has("--storage")) {
    throw UsageError("give either --storage PRESET or --read-mbps/--latency-us, not both");
  }
  if (custom) {
    if (!a.has("--read-mbps") || !a.has("--latency-us")) {
      throw UsageError("a custom device needs both --read-mbps R and --latency-us L");
    }
    sim::StorageModel s{"custom", 0, 0, 0, "command line"};
    s.read_bytes_per_s = uint64_t(a.number("--read-mbps", 0, 1e-6, 1e8) * 1e6);
    if (s.read_bytes_per_s == 0) throw UsageError("--read-mbps is below 1 byte/s");
    s.latency_ns = uint64_t(a.number("--latency-us", 0, 0, 1e9) * 1e3);
    if (a.has("--read-size")) s.max_read_bytes = parse_size(a.get("--read-size"));
    return s;
  }
  const std::string name = a.get("--storage", "nvme");
  const sim::StorageModel* p = sim::storage_preset(name.c_str());
  if (p == nullptr) throw UsageError("unknown --storage '" + name + "' (nvme, emmc, sdcard, spi-flash)");
  return *p;
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path);
  out << content;
  if (!out.flush()) throw std::runtime_error("error writing " + path);
}

int run_sim(const Args& a) {
  if (a.positional.size() != 1) throw UsageError("expected one MODEL");
  if (!a.has("--text")) throw UsageError("--text FILE is required");
  if (!a.has("--trace")) throw UsageError("--trace TRACE is required (a step,budget CSV file or a scenario)");
  const sim::StorageModel storage = storage_from_args(a);
  host::SimOptions opt;
  opt.storage = storage;
  opt.every = uint64_t(a.integer("--every", 16, 1, 1 << 20));
  opt.window = uint64_t(a.integer("--window", 256, 1, 1 << 24));
  const bool timing = !a.has("--no-timing");
  host::TraceSpec spec;
  try {
    spec = host::parse_trace_arg(a.get("--trace"));
  } catch (const host::TraceError& e) {
    throw std::runtime_error(e.what());
  }

  host::ModelHandle model(a.positional[0], a.get("--tokenizer"));
  std::vector<std::string> stories = host::split_stories(read_text_file(a.get("--text")));
  if (a.has("--stories")) stories = host::select_stories(stories, a.get("--stories"));
  const auto tokens = host::tokenize_stories(model.get(), stories);
  uint64_t pass_steps = host::count_predictions(tokens);
  if (pass_steps == 0) throw std::runtime_error(a.get("--text") + ": no text to score");
  if (a.has("--tokens")) pass_steps = std::min<uint64_t>(pass_steps, uint64_t(a.integer("--tokens", 0, 1, INT64_MAX)));

  stk_budget_info bi = STK_BUDGET_INFO_INIT;
  stk_message m{};
  host::check(stk_model_budget_info(model.get(), &bi, &m), m);
  if (bi.n_blocks == 0) {
    std::fprintf(stderr,
                 "note: %s has no BitStack blocks: the weight budget is fixed at the model size, %llu bytes; "
                 "the trace can only check that it fits\n",
                 a.positional[0].c_str(), (unsigned long long)bi.full_budget_bytes);
  }
  host::Schedule sch;
  try {
    sch = host::build_schedule(spec, bi.min_budget_bytes, bi.full_budget_bytes, pass_steps);
  } catch (const host::TraceError& e) {
    throw std::runtime_error(e.what());
  }
  if (sch.ignored_rows != 0) {
    std::fprintf(stderr, "note: %llu trace rows at or past step %llu (the end of the run) are ignored\n",
                 (unsigned long long)sch.ignored_rows, (unsigned long long)sch.total_steps);
  }

  stk_session_config cfg = STK_SESSION_CONFIG_INIT;
  cfg.n_threads = uint32_t(a.integer("--threads", 1, 1, 16));
  cfg.max_batch = 64;
  if (bi.n_blocks != 0 && sch.max_budget() < bi.full_budget_bytes) cfg.max_budget_bytes = sch.max_budget();
  host::SessionHandle session(model, cfg);
  opt.max_batch = cfg.max_batch;

  Progress bar("simulating", sch.total_steps);
  host::SimResult r = host::run_sim(model.get(), session.get(), tokens, sch, opt,
                                    [&](uint64_t d, uint64_t) { bar.update(d); });
  bar.finish();
  host::print_sim_summary(stdout, r, sch.is_sweep, timing);
  std::printf("arena %zu bytes (weights up to %llu bytes of it)\n", session.arena_bytes(),
              (unsigned long long)sch.max_budget());

  if (a.has("--csv")) write_file(a.get("--csv"), host::sim_csv(r, timing));
  if (a.has("--svg")) {
    host::SimLabels labels;
    labels.title = "stk sim: " + base_name(a.positional[0]) + " on " + base_name(a.get("--text"));
    labels.subtitle = "trace " + base_name(a.get("--trace")) + "; storage " + host::describe_storage(storage);
    labels.window = opt.window;
    write_file(a.get("--svg"), host::render_svg(host::sim_figure(r, sch.is_sweep, labels)));
  }
  return 0;
}

}  // namespace

const Command kSimCommand = {
    "sim",
    "MODEL --text FILE --trace TRACE [--storage PRESET | --read-mbps R --latency-us L] [--csv OUT] [--svg OUT]",
    "RAM-budget simulation: score FILE (story ppl) while TRACE changes the BitStack budget; model storage time.",
    {
        {"--text", "FILE", "text to score (required), split into stories at blank lines"},
        {"--trace", "TRACE",
         "budget trace (required): a step,budget CSV file, or sweep:MIN:MAX:N, step-down:FROM:TO:AT[:BACK], "
         "sawtooth:MIN:MAX:PERIOD[:LEVELS], random-walk:MIN:MAX:SEED[:INTERVAL]; budgets are sizes (1.5MB), "
         "min, full or P% of the range; steps count scored tokens"},
        {"--storage", "PRESET", "storage model: nvme (default), emmc, sdcard, spi-flash"},
        {"--read-mbps", "R", "custom storage: sequential read in MB/s (10^6 bytes)"},
        {"--latency-us", "L", "custom storage: microseconds per read request"},
        {"--read-size", "SIZE", "custom storage: largest read request (default: no limit)"},
        {"--csv", "OUT", "write one row per <= --every steps at one budget"},
        {"--svg", "OUT", "write a plot: budget, ppl and tokens/s over steps (sweep: ppl and tokens/s vs budget)"},
        {"--every", "N", "steps per CSV row at most (default 16)"},
        {"--window", "N", "running ppl over the last N predictions (default 256)"},
        {"--tokens", "N", "score at most N predictions per pass (default: the whole text)"},
        {"--stories", "A:B", "score only stories A..B-1 of FILE"},
        {"--no-timing", nullptr, "leave the measured columns (compute_us, tokens_per_s) out: the CSV is then deterministic"},
        {"--threads", "T", "worker threads including the caller (default 1)"},
        {"--tokenizer", "FILE", "llama2.c tokenizer.bin overriding the embedded one"},
    },
    run_sim,
};

}  // namespace stk::cli
