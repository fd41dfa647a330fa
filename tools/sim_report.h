// Output of `stk sim`: the per-row CSV, the SVG figure and the text summary.
#pragma once
#include <cstdio>
#include <string>

#include "tools/sim_run.h"
#include "tools/svg_plot.h"

namespace stk::host {

// Header plus one line per SimRow. Columns, in order:
//   step,pass,steps,budget_bytes,weight_bytes,blocks_resident,bytes_loaded,bytes_dropped,
//   reads,transfer_us,nll,window_ppl            deterministic (modeled or scored)
//   compute_us,tokens_per_s                     measured; left out when !timing
// transfer_us is the modeled storage time of the change applied before the row;
// nll is the row's mean; tokens_per_s = steps / (compute + transfer).
std::string sim_csv(const SimResult& r, bool timing);

struct SimLabels {
  std::string title;     // e.g. "stories260K-bitstack.stk on tinystories_valid_dev.txt"
  std::string subtitle;  // e.g. trace and storage
  uint64_t window = 256;
};

// Timeline (budget and resident weights, running ppl, tokens/s over steps),
// or for a sweep ppl and tokens/s against the budget.
PlotFigure sim_figure(const SimResult& r, bool sweep, const SimLabels& labels);

void print_sim_summary(std::FILE* out, const SimResult& r, bool sweep, bool timing);

// "nvme: 2000 MB/s, 80 us per read, requests <= 131072 bytes"
std::string describe_storage(const sim::StorageModel& s);

}  // namespace stk::host
