// `stk`: one binary for every host tool, `stk <command> [options]`.
#include <cstdio>
#include <cstring>
#include <exception>

#include "c_api/stackrt.h"
#include "tools/commands.h"

namespace {

const stk::cli::Command* const kCommands[] = {&stk::cli::kPackCommand, &stk::cli::kRunCommand,
                                              &stk::cli::kPplCommand, &stk::cli::kInfoCommand,
                                              &stk::cli::kBenchCommand, &stk::cli::kSimCommand};

void print_overview() {
  std::printf("stk %s: pack, run and measure compressed language models\n\nusage: stk <command> [options]\n\n"
              "commands:\n",
              stk_version());
  for (const auto* c : kCommands) std::printf("  %-6s %s\n", c->name, c->summary);
  std::printf("\n`stk <command> -h` describes a command.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
    print_overview();
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("stk %s\n", stk_version());
    return 0;
  }
  for (const auto* c : kCommands) {
    if (std::strcmp(argv[1], c->name) != 0) continue;
    for (int i = 2; i < argc; ++i) {
      if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
        stk::cli::print_usage(*c);
        return 0;
      }
    }
    try {
      stk::cli::Args args = stk::cli::parse(*c, argc - 2, argv + 2);
      return c->run(args);
    } catch (const stk::cli::UsageError& e) {
      std::fprintf(stderr, "stk %s: %s (see stk %s -h)\n", c->name, e.what(), c->name);
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "stk %s: %s\n", c->name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "stk: unknown command '%s' (see stk -h)\n", argv[1]);
  return 2;
}
