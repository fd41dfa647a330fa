// The `stk sim` driver: scores a text with the story-ppl protocol
// (tools/story_ppl.h) on a real session while a Schedule changes its RAM
// budget through stk_session_set_budget, and books every block transfer on a
// simulated device (ports/sim/sim_storage.h).
//
// Steps are scored predictions in protocol order. Evaluation is cut at budget
// changes, so the blocks resident for step s are exactly those of the budget
// in force at s; the KV cache of the window is kept across a change, as it is
// on a device whose memory shrinks mid-generation.
//
// Cold start: the device begins empty and reads the fixed tensors, then the
// block prefix of the first budget (two sequential ranges), before step 0.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "c_api/stackrt.h"
#include "ports/sim/sim_storage.h"
#include "tools/sim_trace.h"

namespace stk::host {

struct SimOptions {
  sim::StorageModel storage = *sim::storage_preset("nvme");
  uint64_t every = 16;    // a row covers at most this many steps (rows also break at budget changes)
  uint64_t window = 256;  // running ppl over the last `window` predictions of the pass
  uint32_t max_batch = 64;  // tokens per eval call (at most the session's max_batch)
};

// One CSV row: consecutive steps of one pass at one budget.
struct SimRow {
  uint64_t step = 0;   // first step (global over all passes)
  uint64_t steps = 0;  // predictions in the row
  uint32_t pass = 0;
  uint64_t budget = 0;
  uint64_t weight_bytes = 0;  // fixed tensors + resident blocks, as the runtime reports
  uint32_t blocks_resident = 0;
  // A budget change applied just before the row's first step (zero otherwise).
  uint64_t bytes_loaded = 0, bytes_dropped = 0, reads = 0, transfer_ns = 0;
  double nll_sum = 0.0;     // over the row's predictions
  double window_ppl = 0.0;  // exp(mean NLL over the last `window` predictions of this pass, up to the row's end)
  uint64_t compute_ns = 0;  // measured time inside stk_session_eval (not deterministic)
  double mean_nll() const { return steps ? nll_sum / double(steps) : 0.0; }
};

// Steps spent at one budget (over the whole run), or one pass of a sweep.
struct SimSegment {
  uint64_t budget = 0, weight_bytes = 0;
  uint64_t predictions = 0;
  double nll_sum = 0.0;
  uint64_t compute_ns = 0, transfer_ns = 0;
  double ppl() const;
  double tokens_per_s() const;  // predictions / (compute + modeled transfer)
};

struct SimResult {
  std::vector<SimRow> rows;
  std::vector<SimSegment> passes;    // one per pass, budget = the pass's first budget
  std::vector<SimSegment> by_budget; // ascending budget
  stk_budget_info budget_info{};
  sim::Transfer cold_start{};        // fixed tensors + first prefix
  uint64_t changes = 0;              // budget changes after the cold start
  sim::Device device{};              // totals (cold start included)
  uint64_t predictions = 0;
  double nll_sum = 0.0;
  uint64_t compute_ns = 0;
  double ppl() const;
};

// Tokenizes each story as story ppl does (BOS, no EOS).
std::vector<std::vector<int32_t>> tokenize_stories(stk_model* model, const std::vector<std::string>& stories);
// Predictions one pass scores: sum over stories of (tokens - 1).
uint64_t count_predictions(const std::vector<std::vector<int32_t>>& stories);

// Runs the schedule (sch.pass_steps may be fewer than the text holds: the pass
// stops there). The session must have been created with max_budget_bytes >=
// sch.max_budget() (or 0) and context_length >= the model's seq_len.
// Throws std::runtime_error with the runtime's message on failure.
SimResult run_sim(stk_model* model, stk_session* session, const std::vector<std::vector<int32_t>>& stories,
                  const Schedule& sch, const SimOptions& options,
                  const std::function<void(uint64_t done, uint64_t total)>& progress = nullptr);

}  // namespace stk::host
