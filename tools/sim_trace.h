// RAM-budget traces for `stk sim`: when, in scored tokens, the budget changes.
//
// A trace is a CSV file or a named scenario. Steps count scored predictions
// (story-ppl protocol order, 0-based); a change at step s takes effect before
// step s is evaluated and holds until the next change.
//
// Budgets (in files and scenarios alike):
//   1500000, 1.5MB, 512KiB ...  bytes (tools/cli.h parse_size units)
//   min                         the model's minimum budget
//   full (or max)               the model's full size
//   P%                          min + P/100 * (full - min), rounded down; 0% = min, 100% = full
// A budget above the full size is allowed (everything is resident); one below
// the minimum is an error naming the minimum.
//
// CSV file: rows `step,budget`; an optional header row `step,budget`; `#`
// starts a comment; blank lines are skipped; steps strictly increase. Steps
// before the first row run at the first row's budget; rows at or past the end
// of the run are ignored (and counted).
//
// Scenarios (the run is one pass over the text unless stated):
//   sweep:MIN:MAX:N              N budgets evenly spaced from MIN to MAX (ascending;
//                                N = 1 gives MIN); each scores the whole text once:
//                                N passes, pass i starts at step i*T (T = steps per pass).
//   step-down:FROM:TO:AT[:BACK]  FROM until step AT, then TO; back to FROM at step BACK.
//   sawtooth:MIN:MAX:PERIOD[:L]  every PERIOD steps the budget climbs L levels (default 8,
//                                at most PERIOD) evenly spaced from MIN to MAX, level k
//                                from step floor(k*PERIOD/L) of the period, then falls to MIN.
//   random-walk:MIN:MAX:SEED[:INTERVAL]  8 levels evenly spaced from MIN to MAX; starts at
//                                MAX; every INTERVAL steps (default 256) draws the next
//                                splitmix64 value of state SEED and moves one level up if
//                                its top bit is 1, else down; at an end it moves to the
//                                only neighbour (the draw is still consumed).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace stk::host {

// A malformed trace or an impossible budget; the message names the file and line
// (or the scenario) and the problem.
struct TraceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct BudgetSpec {
  enum Kind { Bytes, Min, Full, Percent } kind = Bytes;
  uint64_t bytes = 0;    // Bytes
  double percent = 0.0;  // Percent
  std::string text;      // as written
};

// Parses one budget; the error text has no location (callers add it).
BudgetSpec parse_budget_spec(const std::string& text);

struct TracePoint {
  uint64_t step = 0;
  BudgetSpec budget;
  uint32_t line = 0;  // 1-based line in a file; 0 for scenarios
};

struct TraceSpec {
  enum Kind { File, Sweep, StepDown, Sawtooth, RandomWalk } kind = File;
  std::string source;               // file name or the scenario text
  std::vector<TracePoint> points;   // File
  BudgetSpec lo, hi;                // Sweep/Sawtooth/RandomWalk: MIN, MAX; StepDown: FROM, TO
  uint64_t count = 0;               // Sweep: N
  uint64_t at = 0, back = 0;        // StepDown (back 0 = never)
  uint64_t period = 0, levels = 8;  // Sawtooth
  uint64_t seed = 0, interval = 256;  // RandomWalk
};

// `name:...` for a known scenario name, otherwise a CSV file read from disk.
TraceSpec parse_trace_arg(const std::string& arg);
TraceSpec parse_scenario(const std::string& text);
TraceSpec parse_trace_csv(const std::string& content, const std::string& file_name);

struct BudgetChange {
  uint64_t step;
  uint64_t budget;  // bytes
};

struct Schedule {
  uint64_t passes = 1;      // times the text is scored (sweep: N)
  uint64_t pass_steps = 0;  // T
  uint64_t total_steps = 0; // passes * T
  std::vector<BudgetChange> changes;  // first at step 0, steps strictly increasing, budgets differ
  uint64_t ignored_rows = 0;          // file rows at or past total_steps
  bool is_sweep = false;
  uint64_t max_budget() const;
  uint64_t budget_at(uint64_t step) const;
};

// Resolves the spec against a model's budget range and a text of pass_steps
// predictions. Throws TraceError (e.g. a budget below min_budget).
Schedule build_schedule(const TraceSpec& spec, uint64_t min_budget, uint64_t full_budget, uint64_t pass_steps);

uint64_t resolve_budget(const BudgetSpec& b, uint64_t min_budget, uint64_t full_budget);

}  // namespace stk::host
