#include "tools/sim_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>

#include "tools/handles.h"
#include "tools/story_ppl.h"

namespace stk::host {
namespace {

void check_sim(Status s, const char* text) {
  if (s != Status::Ok) throw std::runtime_error(std::string("simulated device: ") + text);
}

// The simulated device as the session's read hook sees it: every block read
// the runtime makes is booked here, and refused if it would overflow the
// device's RAM limit, so the simulation counts the runtime's actual reads
// rather than what it reports.
struct DevicePort {
  sim::Device* device;
  sim::Transfer last{0, 0, 0};  // reads booked since the last take()
  std::string error;
  sim::Transfer take() {
    const sim::Transfer t = last;
    last = sim::Transfer{0, 0, 0};
    return t;
  }
};

int device_read_hook(void* user, uint64_t /*file_offset*/, uint64_t bytes) {
  DevicePort* port = static_cast<DevicePort*>(user);
  char buf[256];
  Message msg{buf, sizeof buf};
  sim::Transfer t{0, 0, 0};
  if (sim::device_read(port->device, bytes, &t, &msg) != Status::Ok) {
    port->error = buf;
    return 1;
  }
  port->last = sim::Transfer{port->last.bytes + t.bytes, port->last.reads + t.reads, port->last.ns + t.ns};
  return 0;
}

// Applies one budget: the device's limit first (the OS takes or grants the
// memory), then the session, whose reads go through the hook.
sim::Transfer apply_budget(stk_session* session, DevicePort* port, uint64_t budget, stk_budget_report* r) {
  sim::Device* dev = port->device;
  char buf[256];
  Message msg{buf, sizeof buf};
  sim::device_set_limit(dev, budget);
  stk_message m{};
  *r = STK_BUDGET_REPORT_INIT;
  if (stk_session_set_budget(session, budget, r, &m) != STK_OK) {
    throw std::runtime_error(port->error.empty() ? std::string(m.text) : "simulated device: " + port->error);
  }
  const sim::Transfer t = port->take();
  if (t.bytes != r->bytes_loaded) {
    throw std::runtime_error("the runtime read " + std::to_string(t.bytes) + " bytes but reports loading " +
                             std::to_string(r->bytes_loaded));
  }
  if (r->bytes_dropped != 0) check_sim(sim::device_drop(dev, r->bytes_dropped, &msg), buf);
  check_sim(sim::device_check(dev, &msg), buf);
  if (dev->resident != r->weight_bytes) {
    throw std::runtime_error("simulated device holds " + std::to_string(dev->resident) +
                             " weight bytes but the runtime reports " + std::to_string(r->weight_bytes));
  }
  return t;
}

void add(SimSegment* s, const SimRow& row) {
  s->predictions += row.steps;
  s->nll_sum += row.nll_sum;
  s->compute_ns += row.compute_ns;
  s->transfer_ns += row.transfer_ns;
}

}  // namespace

double SimSegment::ppl() const { return std::exp(predictions ? nll_sum / double(predictions) : 0.0); }

double SimSegment::tokens_per_s() const {
  const double s = double(compute_ns + transfer_ns) * 1e-9;
  return s > 0 ? double(predictions) / s : 0.0;
}

double SimResult::ppl() const { return std::exp(predictions ? nll_sum / double(predictions) : 0.0); }

std::vector<std::vector<int32_t>> tokenize_stories(stk_model* model, const std::vector<std::string>& stories) {
  std::vector<std::vector<int32_t>> out;
  out.reserve(stories.size());
  stk_message m{};
  for (const std::string& s : stories) {
    std::vector<int32_t> t(s.size() + 3);
    size_t n = 0;
    check(stk_tokenize(model, s.data(), s.size(), 1, t.data(), t.size(), &n, &m), m);
    t.resize(n);
    out.push_back(std::move(t));
  }
  return out;
}

uint64_t count_predictions(const std::vector<std::vector<int32_t>>& stories) {
  uint64_t n = 0;
  for (const auto& s : stories) n += s.size() > 1 ? s.size() - 1 : 0;
  return n;
}

SimResult run_sim(stk_model* model, stk_session* session, const std::vector<std::vector<int32_t>>& stories,
                  const Schedule& sch, const SimOptions& o, const std::function<void(uint64_t, uint64_t)>& progress) {
  if (sch.changes.empty() || sch.changes[0].step != 0) throw std::runtime_error("schedule has no budget at step 0");
  if (o.every == 0 || o.window == 0 || o.max_batch == 0) throw std::runtime_error("every, window and batch must be > 0");
  {
    char buf[256];
    Message msg{buf, sizeof buf};
    check_sim(sim::storage_model_check(o.storage, &msg), buf);
  }
  stk_message m{};
  stk_model_info info = STK_MODEL_INFO_INIT;
  check(stk_model_get_info(model, &info, &m), m);
  SimResult res;
  res.budget_info = STK_BUDGET_INFO_INIT;
  check(stk_model_budget_info(model, &res.budget_info, &m), m);
  const size_t vocab = info.vocab_size;
  const size_t window_len = info.seq_len;

  // Cold start: the device reads the fixed tensors, then the first prefix.
  sim::device_init(&res.device, o.storage, sch.changes[0].budget);
  stk_budget_report rep = STK_BUDGET_REPORT_INIT;
  {
    check(stk_session_set_budget(session, sch.changes[0].budget, &rep, &m), m);
    char buf[256];
    Message msg{buf, sizeof buf};
    const uint64_t fixed = std::min<uint64_t>(res.budget_info.fixed_bytes, rep.weight_bytes);
    sim::Transfer a{0, 0, 0}, b{0, 0, 0};
    check_sim(sim::device_read(&res.device, fixed, &a, &msg), buf);
    check_sim(sim::device_read(&res.device, rep.weight_bytes - fixed, &b, &msg), buf);
    res.cold_start = sim::Transfer{a.bytes + b.bytes, a.reads + b.reads, a.ns + b.ns};
  }
  // From here on every block read of the session is booked by the hook.
  DevicePort port{&res.device, sim::Transfer{0, 0, 0}, std::string()};
  check(stk_session_set_read_hook(session, device_read_hook, &port, &m), m);
  struct Unhook {
    stk_session* s;
    ~Unhook() { stk_session_set_read_hook(s, nullptr, nullptr, nullptr); }
  } unhook{session};
  uint64_t budget = sch.changes[0].budget;
  size_t next_change = 1;

  std::vector<float> logits(size_t(o.max_batch) * vocab);
  std::vector<double> ring(o.window);  // NLLs of the pass's last `window` predictions
  std::map<uint64_t, SimSegment> by_budget;
  SimRow row;
  bool row_open = false;
  uint64_t step = 0;
  const auto eval_chunk = [&](const int32_t* toks, uint32_t n) {
    const auto t0 = std::chrono::steady_clock::now();
    check(stk_session_eval(session, toks, n, logits.data(), &m), m);
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  };

  for (uint32_t pass = 0; pass < sch.passes; ++pass) {
    const uint64_t pass_start = uint64_t(pass) * sch.pass_steps, pass_end = pass_start + sch.pass_steps;
    SimSegment pass_seg;
    pass_seg.budget = sch.budget_at(pass_start);
    uint64_t in_pass = 0;  // predictions scored in this pass (ring fill)
    const auto close_row = [&]() {
      if (!row_open) return;
      const uint64_t n = std::min<uint64_t>(in_pass, o.window);
      double sum = 0.0;
      for (uint64_t k = in_pass - n; k < in_pass; ++k) sum += ring[k % o.window];
      row.window_ppl = std::exp(sum / double(n));
      add(&pass_seg, row);
      SimSegment& seg = by_budget[row.budget];
      seg.budget = row.budget;
      seg.weight_bytes = row.weight_bytes;
      add(&seg, row);
      res.rows.push_back(row);
      row_open = false;
    };
    for (size_t si = 0; si < stories.size() && step < pass_end; ++si) {
      const std::vector<int32_t>& toks = stories[si];
      const size_t n = toks.size();
      for (size_t start = 0; start + 1 < n && step < pass_end; start += window_len - 1) {
        const size_t len = std::min(window_len, n - start);
        stk_session_reset(session);
        size_t i = 0;
        while (i + 1 < len && step < pass_end) {
          if (next_change < sch.changes.size() && sch.changes[next_change].step == step) {
            close_row();
            budget = sch.changes[next_change++].budget;
            const sim::Transfer t = apply_budget(session, &port, budget, &rep);
            ++res.changes;
            row = SimRow{};
            row.bytes_loaded = rep.bytes_loaded;
            row.bytes_dropped = rep.bytes_dropped;
            row.reads = t.reads;
            row.transfer_ns = t.ns;
            row_open = true;
          }
          if (row_open && (row.steps == o.every || (step - pass_start) % o.every == 0) && row.steps > 0) close_row();
          if (!row_open) {
            row = SimRow{};
            row_open = true;
          }
          if (row.steps == 0) {
            row.step = step;
            row.pass = pass;
            row.budget = budget;
            row.weight_bytes = rep.weight_bytes;
            row.blocks_resident = rep.blocks_resident;
            if (in_pass == 0) pass_seg.weight_bytes = rep.weight_bytes;
          }
          // Steps until the row, the pass or the current budget ends.
          uint64_t chunk = std::min<uint64_t>(len - 1 - i, o.max_batch);
          chunk = std::min<uint64_t>(chunk, o.every - (step - pass_start) % o.every);
          chunk = std::min<uint64_t>(chunk, pass_end - step);
          if (next_change < sch.changes.size()) chunk = std::min<uint64_t>(chunk, sch.changes[next_change].step - step);
          row.compute_ns += eval_chunk(toks.data() + start + i, uint32_t(chunk));
          for (uint64_t j = 0; j < chunk; ++j) {
            const double nll = token_nll(logits.data() + j * vocab, uint32_t(vocab), toks[start + i + j + 1]);
            row.nll_sum += nll;
            ring[in_pass % o.window] = nll;
            ++in_pass;
          }
          row.steps += chunk;
          i += chunk;
          step += chunk;
          if (progress) progress(step, sch.total_steps);
        }
        if (start + len >= n) break;
      }
    }
    close_row();
    if (step < pass_end) {
      throw std::runtime_error("the text holds " + std::to_string(step - pass_start) + " predictions, the schedule " +
                               std::to_string(sch.pass_steps) + " per pass");
    }
    res.passes.push_back(pass_seg);
  }
  for (auto& kv : by_budget) res.by_budget.push_back(kv.second);
  for (const SimRow& r : res.rows) {
    res.predictions += r.steps;
    res.nll_sum += r.nll_sum;
    res.compute_ns += r.compute_ns;
  }
  return res;
}

}  // namespace stk::host
