// Shared command-line plumbing for the `stk` subcommands: flag parsing with
// one-line errors, size and number parsing, progress on a terminal.
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace stk::cli {

// A mistake in how the command was invoked: printed with a usage hint.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Flag {
  const char* name;   // "--temp" or "-n"
  const char* value;  // placeholder ("T") or nullptr for a switch
  const char* help;
};

struct Command {
  const char* name;
  const char* synopsis;  // "MODEL [options]"
  const char* summary;
  std::vector<Flag> flags;
  int (*run)(const struct Args& args);
};

struct Args {
  const Command* command;
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> values;  // flag -> every value given

  bool has(const std::string& flag) const { return values.count(flag) > 0; }
  std::string get(const std::string& flag, const std::string& fallback = "") const;
  const std::vector<std::string>& all(const std::string& flag) const;
  double number(const std::string& flag, double fallback, double lo, double hi) const;
  int64_t integer(const std::string& flag, int64_t fallback, int64_t lo, int64_t hi) const;
};

// Parses argv after the command name; throws UsageError.
Args parse(const Command& cmd, int argc, char** argv);
void print_usage(const Command& cmd);

// "1500000", "1.5MB", "512KiB" ... -> bytes. Throws UsageError.
uint64_t parse_size(const std::string& text);

// A progress line on stderr, redrawn in place, only when stderr is a terminal.
class Progress {
 public:
  Progress(const char* what, uint64_t total);
  void update(uint64_t done);
  void finish();

 private:
  const char* what_;
  uint64_t total_;
  bool tty_;
  int last_percent_ = -1;
};

std::string read_text_file(const std::string& path);

}  // namespace stk::cli
