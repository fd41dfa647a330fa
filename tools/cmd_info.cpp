// stk info: what is inside a .stk model and what a session of it needs.
#include <cstdio>

#include "tools/commands.h"
#include "tools/handles.h"
#include "tools/budget_cli.h"
#include "tools/model_stats.h"

namespace stk::cli {
namespace {

int run_info(const Args& a) {
  if (a.positional.size() != 1) throw UsageError("expected one MODEL");
  host::ModelHandle model(a.positional[0]);
  const stk_model_info& i = model.info();
  std::printf("model %s: %llu bytes\n", a.positional[0].c_str(), (unsigned long long)i.file_bytes);
  std::printf("  dim %u  hidden %u  layers %u  heads %u  kv_heads %u  vocab %u  seq_len %u\n", i.dim, i.hidden_dim,
              i.n_layers, i.n_heads, i.n_kv_heads, i.vocab_size, i.seq_len);
  std::printf("\n  %-24s %-6s %12s %12s\n", "tensor", "format", "shape", "bytes");
  stk_message m{};
  for (uint32_t k = 0; k < i.n_tensors; ++k) {
    stk_tensor_info t = STK_TENSOR_INFO_INIT;
    host::check(stk_model_tensor_info(model.get(), k, &t, &m), m);
    std::string shape = std::to_string(t.rows) + "x" + std::to_string(t.cols);
    std::printf("  %-24s %-6s %12s %12llu\n", t.name, host::tensor_format_label(model.get(), k).c_str(), shape.c_str(),
                (unsigned long long)t.bytes);
  }
  std::printf("\n  weight bytes %llu\n", (unsigned long long)i.weight_bytes);
  std::printf("  linear_bpw %.4f (bits per matrix weight, scales included)\n", host::model_linear_bpw(model.get()));
  host::print_budget_info(model.get(), a.has("--budget") ? parse_size(a.get("--budget")) : 0);  // tools/budget_cli.h
  for (uint32_t threads : {1u, 2u}) {
    stk_session_config cfg = STK_SESSION_CONFIG_INIT;
    cfg.n_threads = threads;
    size_t bytes = 0;
    host::check(stk_session_arena_size(model.get(), &cfg, &bytes, &m), m);
    std::printf("  arena for a %u-position context, %u thread%s, batch 16: %zu bytes\n", i.seq_len, threads,
                threads == 1 ? "" : "s", bytes);
  }
  return 0;
}

}  // namespace

const Command kInfoCommand = {
    "info",
    "MODEL",
    "Show a model's hyper-parameters, tensors (format, shape, bytes), weight bytes and the arena a session needs.",
    {{"--budget", "SIZE", "BitStack models: show the blocks resident per tensor at this budget (default: full)"}},
    run_info,
};

}  // namespace stk::cli
