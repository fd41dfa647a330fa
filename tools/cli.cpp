#include "tools/cli.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace stk::cli {

std::string Args::get(const std::string& flag, const std::string& fallback) const {
  auto it = values.find(flag);
  return it == values.end() ? fallback : it->second.back();
}

const std::vector<std::string>& Args::all(const std::string& flag) const {
  static const std::vector<std::string> none;
  auto it = values.find(flag);
  return it == values.end() ? none : it->second;
}

double Args::number(const std::string& flag, double fallback, double lo, double hi) const {
  if (!has(flag)) return fallback;
  const std::string s = get(flag);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno != 0 || !std::isfinite(v)) {
    throw UsageError(flag + " expects a number, got '" + s + "'");
  }
  if (v < lo || v > hi) {
    throw UsageError(flag + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + s);
  }
  return v;
}

int64_t Args::integer(const std::string& flag, int64_t fallback, int64_t lo, int64_t hi) const {
  if (!has(flag)) return fallback;
  const std::string s = get(flag);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0) throw UsageError(flag + " expects an integer, got '" + s + "'");
  if (v < lo || v > hi) {
    throw UsageError(flag + " must be in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + s);
  }
  return v;
}

Args parse(const Command& cmd, int argc, char** argv) {
  Args a;
  a.command = &cmd;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() > 1 && arg[0] == '-' && !(arg.size() > 1 && (std::isdigit(uint8_t(arg[1])) || arg[1] == '.'))) {
      std::string name = arg, value;
      bool inline_value = false;
      size_t eq = arg.find('=');
      if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
        name = arg.substr(0, eq);
        value = arg.substr(eq + 1);
        inline_value = true;
      }
      const Flag* f = nullptr;
      for (const Flag& cand : cmd.flags) {
        if (name == cand.name) f = &cand;
      }
      if (f == nullptr) throw UsageError("unknown option " + name);
      if (f->value == nullptr) {
        if (inline_value) throw UsageError(name + " takes no value");
        a.values[name].push_back("1");
        continue;
      }
      if (!inline_value) {
        if (i + 1 >= argc) throw UsageError(name + " needs a value (" + f->value + ")");
        value = argv[++i];
      }
      a.values[name].push_back(value);
    } else {
      a.positional.push_back(arg);
    }
  }
  return a;
}

void print_usage(const Command& cmd) {
  std::printf("usage: stk %s %s\n\n%s\n", cmd.name, cmd.synopsis, cmd.summary);
  if (!cmd.flags.empty()) std::printf("\noptions:\n");
  for (const Flag& f : cmd.flags) {
    std::string left = std::string(f.name) + (f.value ? std::string(" ") + f.value : "");
    std::printf("  %-22s %s\n", left.c_str(), f.help);
  }
}

uint64_t parse_size(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(uint8_t(text[i])) || text[i] == '.')) ++i;
  const std::string number = text.substr(0, i), unit = text.substr(i);
  char* end = nullptr;
  double v = std::strtod(number.c_str(), &end);
  if (number.empty() || *end != '\0') throw UsageError("cannot read size '" + text + "' (e.g. 1500000, 1.5MB, 512KiB)");
  static const std::pair<const char*, double> units[] = {
      {"", 1},       {"B", 1},          {"KB", 1e3},    {"MB", 1e6},          {"GB", 1e9},
      {"KiB", 1024}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}};
  for (const auto& u : units) {
    if (unit == u.first) {
      double bytes = std::floor(v * u.second);
      if (bytes < 0 || bytes > 1.8e19) throw UsageError("size out of range: " + text);
      return uint64_t(bytes);
    }
  }
  throw UsageError("unknown size unit '" + unit + "' in '" + text + "' (B, KB, MB, GB, KiB, MiB, GiB)");
}

Progress::Progress(const char* what, uint64_t total) : what_(what), total_(total), tty_(isatty(2) != 0) {}

void Progress::update(uint64_t done) {
  if (!tty_ || total_ == 0) return;
  int percent = int(done * 100 / total_);
  if (percent == last_percent_) return;
  last_percent_ = percent;
  int bars = percent * 30 / 100;
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%%", what_, bars, "##############################", 30 - bars, "",
               percent);
  std::fflush(stderr);
}

void Progress::finish() {
  if (tty_ && last_percent_ >= 0) std::fprintf(stderr, "\r\033[K");
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace stk::cli
