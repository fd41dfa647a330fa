// Budget helpers shared by the `stk` commands that take --budget.
#pragma once
#include <cstdint>
#include <string>

#include "c_api/stackrt.h"

namespace stk::host {

// Sets `budget` on the session (the arena was sized for it; 0 = full) and
// prints what is resident on stderr: "budget 123456: 40 blocks resident,
// weight bytes 120000". Returns the runtime's report.
stk_budget_report report_budget(stk_session* session, uint64_t budget);

// `stk info` lines: min/full budget, block count, and blocks per tensor at `budget`
// (0 = full).
void print_budget_info(const stk_model* model, uint64_t budget);

}  // namespace stk::host
