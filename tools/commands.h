// The `stk` subcommands, one file each.
#pragma once
#include "tools/cli.h"

namespace stk::cli {

extern const Command kPackCommand;
extern const Command kRunCommand;
extern const Command kPplCommand;
extern const Command kInfoCommand;

}  // namespace stk::cli
