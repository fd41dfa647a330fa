// The `stk` subcommands, one file each.
#pragma once
#include "tools/cli.h"

namespace stk::cli {

extern const Command kPackCommand;
extern const Command kRunCommand;
extern const Command kPplCommand;
extern const Command kInfoCommand;
extern const Command kBenchCommand;  // bench/cmd_bench.cpp
extern const Command kSimCommand;    // tools/cmd_sim.cpp

}  // namespace stk::cli
