#include "tools/sim_trace.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tools/cli.h"

namespace stk::host {
namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(uint8_t(s[a]))) ++a;
  while (b > a && std::isspace(uint8_t(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(uint8_t(c)));
  return s;
}

// A non-negative decimal integer, digits only; false otherwise.
bool parse_u64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + uint64_t(c - '0');
  }
  *out = v;
  return true;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) return out;
    start = p + 1;
  }
}

uint64_t splitmix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Budget `k` of `n` levels evenly spaced over [lo, hi] (n >= 2), rounded down.
uint64_t level(uint64_t lo, uint64_t hi, uint64_t k, uint64_t n) {
  if (n < 2) return lo;
  const long double span = (long double)(hi - lo);
  return lo + uint64_t(std::floor(span * (long double)k / (long double)(n - 1)));
}

}  // namespace

BudgetSpec parse_budget_spec(const std::string& raw) {
  BudgetSpec b;
  b.text = trim(raw);
  const std::string t = lower(b.text);
  if (t.empty()) throw TraceError("empty budget");
  if (t == "min") {
    b.kind = BudgetSpec::Min;
  } else if (t == "full" || t == "max") {
    b.kind = BudgetSpec::Full;
  } else if (t.back() == '%') {
    const std::string num = t.substr(0, t.size() - 1);
    char* end = nullptr;
    errno = 0;
    double p = std::strtod(num.c_str(), &end);
    if (num.empty() || *end != '\0' || errno != 0 || !std::isfinite(p) || !(std::isdigit(uint8_t(num[0])) || num[0] == '.')) {
      throw TraceError("cannot read percentage '" + b.text + "'");
    }
    if (p > 100.0) throw TraceError("percentage '" + b.text + "' is above 100%");
    b.kind = BudgetSpec::Percent;
    b.percent = p;
  } else {
    try {
      b.bytes = cli::parse_size(b.text);
    } catch (const cli::UsageError& e) {
      throw TraceError(std::string(e.what()) + "; or min, full, P%");
    }
    b.kind = BudgetSpec::Bytes;
  }
  return b;
}

uint64_t resolve_budget(const BudgetSpec& b, uint64_t min_budget, uint64_t full_budget) {
  switch (b.kind) {
    case BudgetSpec::Min: return min_budget;
    case BudgetSpec::Full: return full_budget;
    case BudgetSpec::Percent: {
      const uint64_t span = full_budget > min_budget ? full_budget - min_budget : 0;
      return min_budget + uint64_t(std::floor((long double)span * (long double)b.percent / 100.0L));
    }
    case BudgetSpec::Bytes: break;
  }
  return b.bytes;
}

TraceSpec parse_trace_csv(const std::string& content, const std::string& file_name) {
  TraceSpec spec;
  spec.kind = TraceSpec::File;
  spec.source = file_name;
  std::istringstream in(content);
  std::string line;
  uint32_t line_no = 0;
  bool seen_row = false;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string where = file_name + ":" + std::to_string(line_no) + ": ";
    size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    line = trim(line);
    if (line.empty()) continue;
    std::vector<std::string> f = split(line, ',');
    for (std::string& x : f) x = trim(x);
    if (f.size() != 2) {
      throw TraceError(where + "expected 2 fields 'step,budget', found " + std::to_string(f.size()));
    }
    if (!seen_row && lower(f[0]) == "step" && lower(f[1]) == "budget") {  // the header
      seen_row = true;
      continue;
    }
    seen_row = true;
    TracePoint p;
    p.line = line_no;
    if (!parse_u64(f[0], &p.step)) {
      throw TraceError(where + "step '" + f[0] + "' is not a non-negative integer");
    }
    try {
      p.budget = parse_budget_spec(f[1]);
    } catch (const TraceError& e) {
      throw TraceError(where + e.what());
    }
    if (!spec.points.empty() && p.step <= spec.points.back().step) {
      throw TraceError(where + "step " + std::to_string(p.step) + " does not follow the previous row's step " +
                       std::to_string(spec.points.back().step) + " (steps must increase)");
    }
    spec.points.push_back(p);
  }
  if (spec.points.empty()) throw TraceError(file_name + ": no `step,budget` rows");
  return spec;
}

TraceSpec parse_scenario(const std::string& text) {
  TraceSpec s;
  s.source = text;
  std::vector<std::string> f = split(text, ':');
  const std::string name = f[0];
  const std::string what = "scenario '" + text + "': ";
  auto budget = [&](size_t i, const char* role) {
    try {
      return parse_budget_spec(f[i]);
    } catch (const TraceError& e) {
      throw TraceError(what + role + ": " + e.what());
    }
  };
  auto number = [&](size_t i, const char* role, uint64_t lo, uint64_t hi) {
    uint64_t v = 0;
    if (!parse_u64(trim(f[i]), &v)) throw TraceError(what + role + " '" + f[i] + "' is not a non-negative integer");
    if (v < lo || v > hi) {
      throw TraceError(what + role + " must be in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " +
                       std::to_string(v));
    }
    return v;
  };
  auto arity = [&](size_t required, size_t optional, const char* usage) {
    const size_t n = f.size() - 1;
    if (n < required || n > required + optional) throw TraceError(what + "expected " + usage);
  };
  const uint64_t kMaxStep = uint64_t(1) << 53;
  if (name == "sweep") {
    arity(3, 0, "sweep:MIN:MAX:N");
    s.kind = TraceSpec::Sweep;
    s.lo = budget(1, "MIN");
    s.hi = budget(2, "MAX");
    s.count = number(3, "N", 1, 1000);
  } else if (name == "step-down") {
    arity(3, 1, "step-down:FROM:TO:AT[:BACK]");
    s.kind = TraceSpec::StepDown;
    s.lo = budget(1, "FROM");
    s.hi = budget(2, "TO");
    s.at = number(3, "AT", 1, kMaxStep);
    if (f.size() > 4) {
      s.back = number(4, "BACK", 1, kMaxStep);
      if (s.back <= s.at) throw TraceError(what + "BACK (" + std::to_string(s.back) + ") must come after AT (" +
                                           std::to_string(s.at) + ")");
    }
  } else if (name == "sawtooth") {
    arity(3, 1, "sawtooth:MIN:MAX:PERIOD[:LEVELS]");
    s.kind = TraceSpec::Sawtooth;
    s.lo = budget(1, "MIN");
    s.hi = budget(2, "MAX");
    s.period = number(3, "PERIOD", 2, kMaxStep);
    s.levels = f.size() > 4 ? number(4, "LEVELS", 2, 4096) : std::min<uint64_t>(8, s.period);
    if (s.levels > s.period) {
      throw TraceError(what + "LEVELS (" + std::to_string(s.levels) + ") must not exceed PERIOD (" +
                       std::to_string(s.period) + ")");
    }
  } else if (name == "random-walk") {
    arity(3, 1, "random-walk:MIN:MAX:SEED[:INTERVAL]");
    s.kind = TraceSpec::RandomWalk;
    s.lo = budget(1, "MIN");
    s.hi = budget(2, "MAX");
    s.seed = number(3, "SEED", 0, UINT64_MAX / 2);
    if (f.size() > 4) s.interval = number(4, "INTERVAL", 1, kMaxStep);
  } else {
    throw TraceError("unknown scenario '" + name + "' (sweep, step-down, sawtooth, random-walk)");
  }
  return s;
}

TraceSpec parse_trace_arg(const std::string& arg) {
  const size_t colon = arg.find(':');
  if (colon != std::string::npos) {
    const std::string name = arg.substr(0, colon);
    if (name == "sweep" || name == "step-down" || name == "sawtooth" || name == "random-walk") {
      return parse_scenario(arg);
    }
  }
  std::ifstream in(arg, std::ios::binary);
  if (!in) {
    throw TraceError("cannot open trace file '" + arg +
                     "' (a trace is a step,budget CSV file or sweep:, step-down:, sawtooth:, random-walk:)");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_trace_csv(ss.str(), arg);
}

uint64_t Schedule::max_budget() const {
  uint64_t m = 0;
  for (const BudgetChange& c : changes) m = std::max(m, c.budget);
  return m;
}

uint64_t Schedule::budget_at(uint64_t step) const {
  uint64_t b = changes.empty() ? 0 : changes[0].budget;
  for (const BudgetChange& c : changes) {
    if (c.step > step) break;
    b = c.budget;
  }
  return b;
}

Schedule build_schedule(const TraceSpec& spec, uint64_t min_budget, uint64_t full_budget, uint64_t pass_steps) {
  Schedule sch;
  sch.pass_steps = pass_steps;
  sch.passes = spec.kind == TraceSpec::Sweep ? spec.count : 1;
  sch.is_sweep = spec.kind == TraceSpec::Sweep;
  sch.total_steps = sch.passes * pass_steps;
  const uint64_t end = sch.total_steps;

  auto below = [&](uint64_t bytes, const std::string& where, const std::string& text) {
    return TraceError(where + "budget " + text + " (" + std::to_string(bytes) +
                      " bytes) is below the model's minimum of " + std::to_string(min_budget) +
                      " bytes (use 'min', or a percentage of the range)");
  };
  auto resolve = [&](const BudgetSpec& b, const std::string& where) {
    const uint64_t v = resolve_budget(b, min_budget, full_budget);
    if (v < min_budget) throw below(v, where, "'" + b.text + "'");
    return v;
  };
  std::vector<BudgetChange> raw;
  const std::string scen = "scenario '" + spec.source + "': ";
  switch (spec.kind) {
    case TraceSpec::File: {
      for (size_t i = 0; i < spec.points.size(); ++i) {
        const TracePoint& p = spec.points[i];
        const uint64_t v = resolve(p.budget, spec.source + ":" + std::to_string(p.line) + ": ");
        if (i > 0 && p.step >= end) {
          ++sch.ignored_rows;
          continue;
        }
        raw.push_back({i == 0 ? 0 : p.step, v});
      }
      break;
    }
    case TraceSpec::Sweep: {
      const uint64_t lo = resolve(spec.lo, scen), hi = resolve(spec.hi, scen);
      if (lo > hi) throw TraceError(scen + "MIN (" + std::to_string(lo) + " bytes) is above MAX (" +
                                    std::to_string(hi) + " bytes)");
      for (uint64_t i = 0; i < spec.count; ++i) raw.push_back({i * pass_steps, level(lo, hi, i, spec.count)});
      break;
    }
    case TraceSpec::StepDown: {
      const uint64_t from = resolve(spec.lo, scen), to = resolve(spec.hi, scen);
      raw.push_back({0, from});
      if (spec.at < end) raw.push_back({spec.at, to});
      if (spec.back != 0 && spec.back < end) raw.push_back({spec.back, from});
      break;
    }
    case TraceSpec::Sawtooth: {
      const uint64_t lo = resolve(spec.lo, scen), hi = resolve(spec.hi, scen);
      if (lo > hi) throw TraceError(scen + "MIN (" + std::to_string(lo) + " bytes) is above MAX (" +
                                    std::to_string(hi) + " bytes)");
      for (uint64_t start = 0; start == 0 || start < end; start += spec.period) {
        for (uint64_t k = 0; k < spec.levels; ++k) {
          const uint64_t at = start + k * spec.period / spec.levels;
          if (at >= end && at > 0) break;
          raw.push_back({at, level(lo, hi, k, spec.levels)});
        }
      }
      break;
    }
    case TraceSpec::RandomWalk: {
      const uint64_t lo = resolve(spec.lo, scen), hi = resolve(spec.hi, scen);
      if (lo > hi) throw TraceError(scen + "MIN (" + std::to_string(lo) + " bytes) is above MAX (" +
                                    std::to_string(hi) + " bytes)");
      const uint64_t n = 8;
      uint64_t k = n - 1, state = spec.seed;
      raw.push_back({0, level(lo, hi, k, n)});
      for (uint64_t at = spec.interval; at < end; at += spec.interval) {
        const bool up = (splitmix64(&state) >> 63) != 0;
        if (k == 0) {
          k = 1;
        } else if (k == n - 1) {
          k = n - 2;
        } else {
          k = up ? k + 1 : k - 1;
        }
        raw.push_back({at, level(lo, hi, k, n)});
      }
      break;
    }
  }
  // Keep the first change and every one that actually changes the budget.
  for (const BudgetChange& c : raw) {
    if (!sch.changes.empty() && sch.changes.back().budget == c.budget) continue;
    sch.changes.push_back(c);
  }
  return sch;
}

}  // namespace stk::host
