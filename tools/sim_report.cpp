#include "tools/sim_report.h"

#include <algorithm>
#include <cmath>

namespace stk::host {
namespace {

std::string us_text(uint64_t ns) {  // exact microseconds with 3 decimals
  char b[40];
  std::snprintf(b, sizeof b, "%llu.%03llu", (unsigned long long)(ns / 1000), (unsigned long long)(ns % 1000));
  return b;
}

double rate(uint64_t steps, uint64_t ns) { return ns ? double(steps) / (double(ns) * 1e-9) : 0.0; }

struct Unit {
  double scale;
  const char* name;
};

Unit byte_unit(uint64_t max_bytes) {
  return max_bytes >= 10000000ull ? Unit{1e6, "MB"} : Unit{1e3, "KB"};
}

}  // namespace

std::string describe_storage(const sim::StorageModel& s) {
  char b[160];
  std::snprintf(b, sizeof b, "%s: %.1f MB/s, %.1f us per read, %s", s.name, double(s.read_bytes_per_s) / 1e6,
                double(s.latency_ns) / 1e3,
                s.max_read_bytes ? ("requests <= " + std::to_string(s.max_read_bytes) + " bytes").c_str()
                                 : "one request per contiguous range");
  return b;
}

std::string sim_csv(const SimResult& r, bool timing) {
  std::string o =
      "step,pass,steps,budget_bytes,weight_bytes,blocks_resident,bytes_loaded,bytes_dropped,reads,transfer_us,nll,"
      "window_ppl";
  o += timing ? ",compute_us,tokens_per_s\n" : "\n";
  char b[512];
  for (const SimRow& w : r.rows) {
    std::snprintf(b, sizeof b, "%llu,%u,%llu,%llu,%llu,%u,%llu,%llu,%llu,%s,%.6f,%.6f", (unsigned long long)w.step,
                  w.pass, (unsigned long long)w.steps, (unsigned long long)w.budget,
                  (unsigned long long)w.weight_bytes, w.blocks_resident, (unsigned long long)w.bytes_loaded,
                  (unsigned long long)w.bytes_dropped, (unsigned long long)w.reads, us_text(w.transfer_ns).c_str(),
                  w.mean_nll(), w.window_ppl);
    o += b;
    if (timing) {
      std::snprintf(b, sizeof b, ",%s,%.1f", us_text(w.compute_ns).c_str(),
                    rate(w.steps, w.compute_ns + w.transfer_ns));
      o += b;
    }
    o += "\n";
  }
  return o;
}

PlotFigure sim_figure(const SimResult& r, bool sweep, const SimLabels& labels) {
  PlotFigure f;
  f.title = labels.title;
  f.subtitle = labels.subtitle;
  uint64_t max_bytes = 0;
  for (const SimRow& w : r.rows) max_bytes = std::max({max_bytes, w.budget, w.weight_bytes});
  const Unit u = byte_unit(max_bytes);
  if (sweep) {
    f.panel_height = 320;
    PlotPanel ppl, speed;
    ppl.x_label = speed.x_label = std::string("RAM budget for weights (") + u.name + ")";
    ppl.y_label = "perplexity (story ppl)";
    speed.y_label = "tokens/s (compute + modeled I/O)";
    speed.y_from_zero = true;
    PlotSeries sp{"ppl over the text", "#d62728", {}, false, true, false};
    PlotSeries st{"tokens/s", "#1f77b4", {}, false, true, false};
    for (const SimSegment& p : r.passes) {
      sp.points.emplace_back(double(p.budget) / u.scale, p.ppl());
      st.points.emplace_back(double(p.budget) / u.scale, p.tokens_per_s());
    }
    double lo = 0, hi = 0;
    for (const auto& pt : sp.points) {
      lo = lo == 0 ? pt.second : std::min(lo, pt.second);
      hi = std::max(hi, pt.second);
    }
    ppl.log_y = lo > 0 && hi / lo > 30;
    if (ppl.log_y) ppl.y_label += " (log scale)";
    ppl.series.push_back(sp);
    speed.series.push_back(st);
    f.panels = {ppl, speed};
    return f;
  }
  f.panel_height = 250;
  PlotPanel mem, ppl, speed;
  mem.x_label = ppl.x_label = speed.x_label = "step (scored tokens)";
  mem.y_label = std::string("memory (") + u.name + ")";
  ppl.y_label = "perplexity";
  speed.y_label = "tokens/s";
  mem.y_from_zero = speed.y_from_zero = true;
  PlotSeries budget{"RAM budget", "#1f77b4", {}, true, false, false};
  PlotSeries weights{"resident weights", "#ff7f0e", {}, true, false, true};
  PlotSeries wp{"ppl, last " + std::to_string(labels.window) + " tokens", "#2ca02c", {}, false, false, false};
  PlotSeries sp{"tokens/s, last " + std::to_string(labels.window) + " tokens (compute + modeled I/O)", "#9467bd", {},
                false, false, false};
  const size_t stride = std::max<size_t>(1, r.rows.size() / 1500);
  uint64_t end = 0;
  // Rows first..i hold the pass's last >= `window` steps (fewer at its start).
  size_t first = 0;
  uint64_t win_steps = 0, win_ns = 0;
  double lo_ppl = 0, hi_ppl = 0;
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const SimRow& w = r.rows[i];
    const double x = double(w.step);
    if (budget.points.empty() || budget.points.back().second != double(w.budget) / u.scale) {
      budget.points.emplace_back(x, double(w.budget) / u.scale);
    }
    if (weights.points.empty() || weights.points.back().second != double(w.weight_bytes) / u.scale) {
      weights.points.emplace_back(x, double(w.weight_bytes) / u.scale);
    }
    if (i > 0 && w.pass != r.rows[i - 1].pass) {
      first = i;
      win_steps = win_ns = 0;
    }
    win_steps += w.steps;
    win_ns += w.compute_ns + w.transfer_ns;
    while (first < i && win_steps - r.rows[first].steps >= labels.window) {
      win_steps -= r.rows[first].steps;
      win_ns -= r.rows[first].compute_ns + r.rows[first].transfer_ns;
      ++first;
    }
    // Transfers are never thinned out: they are the events the plot is for.
    if (i % stride == 0 || w.transfer_ns != 0 || i + 1 == r.rows.size()) {
      wp.points.emplace_back(double(w.step + w.steps), w.window_ppl);
      sp.points.emplace_back(double(w.step + w.steps), rate(win_steps, win_ns));
    }
    lo_ppl = i == 0 ? w.window_ppl : std::min(lo_ppl, w.window_ppl);
    hi_ppl = std::max(hi_ppl, w.window_ppl);
    end = w.step + w.steps;
  }
  ppl.log_y = lo_ppl > 0 && hi_ppl / lo_ppl > 30;
  if (ppl.log_y) ppl.y_label += " (log scale)";
  if (!budget.points.empty()) budget.points.emplace_back(double(end), budget.points.back().second);
  if (!weights.points.empty()) weights.points.emplace_back(double(end), weights.points.back().second);
  mem.series = {budget, weights};
  ppl.series = {wp};
  speed.series = {sp};
  f.panels = {mem, ppl, speed};
  return f;
}

void print_sim_summary(std::FILE* out, const SimResult& r, bool sweep, bool timing) {
  const stk_budget_info& bi = r.budget_info;
  if (bi.n_blocks == 0) {
    std::fprintf(out, "model: no BitStack blocks: the weight budget is fixed at the model size, %llu bytes\n",
                 (unsigned long long)bi.full_budget_bytes);
  } else {
    std::fprintf(out, "model: %u BitStack blocks; budgets from %llu (min) to %llu (full) bytes; fixed tensors %llu\n",
                 bi.n_blocks, (unsigned long long)bi.min_budget_bytes, (unsigned long long)bi.full_budget_bytes,
                 (unsigned long long)bi.fixed_bytes);
  }
  std::fprintf(out, "storage: %s\n", describe_storage(r.device.storage).c_str());
  std::fprintf(out, "cold start: %llu bytes in %llu reads, %.3f ms modeled\n", (unsigned long long)r.cold_start.bytes,
               (unsigned long long)r.cold_start.reads, double(r.cold_start.ns) / 1e6);
  const uint64_t moved_ns = r.device.transfer_ns - r.cold_start.ns;
  std::fprintf(out,
               "run: %llu steps, %zu passes, %llu budget changes; loaded %llu bytes in %llu reads (%.3f ms modeled), "
               "dropped %llu bytes\n",
               (unsigned long long)r.predictions, r.passes.size(), (unsigned long long)r.changes,
               (unsigned long long)(r.device.bytes_read - r.cold_start.bytes),
               (unsigned long long)(r.device.reads - r.cold_start.reads), double(moved_ns) / 1e6,
               (unsigned long long)r.device.bytes_dropped);
  std::fprintf(out, "ppl %.6f (mean NLL %.6f over %llu predictions)\n", r.ppl(),
               r.predictions ? r.nll_sum / double(r.predictions) : 0.0, (unsigned long long)r.predictions);
  if (timing) {
    std::fprintf(out, "compute %.3f s measured: %.1f tokens/s; with modeled I/O: %.1f tokens/s\n",
                 double(r.compute_ns) * 1e-9, rate(r.predictions, r.compute_ns),
                 rate(r.predictions, r.compute_ns + moved_ns));
  }
  const std::vector<SimSegment>& segs = sweep ? r.passes : r.by_budget;
  std::fprintf(out, "%s\n", sweep ? "per pass (sweep level):" : "per budget:");
  std::fprintf(out, "  %14s %14s %10s %10s%s\n", "budget_bytes", "weight_bytes", "steps", "ppl",
               timing ? "   tokens/s" : "");
  for (const SimSegment& s : segs) {
    std::fprintf(out, "  %14llu %14llu %10llu %10.4f", (unsigned long long)s.budget, (unsigned long long)s.weight_bytes,
                 (unsigned long long)s.predictions, s.ppl());
    if (timing) std::fprintf(out, " %10.1f", s.tokens_per_s());
    std::fprintf(out, "\n");
  }
}

}  // namespace stk::host
