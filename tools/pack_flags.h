// Flags that every `stk pack` path reads the same way: the calibration text
// and the distillation that trains on it (low-bit, sparse and BitStack packs).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tools/cli.h"

namespace stk::cli {

struct CalibFlags {
  std::vector<std::string> calib;  // --calib FILE, its first --calib-stories stories; empty without --calib
  uint32_t distill_epochs = 0;     // --distill EPOCHS
  uint32_t distill_samples = 0;    // --distill-samples N
};

// Reads --calib/--calib-stories/--distill/--distill-samples; throws UsageError
// for --distill without --calib or --distill-samples without --distill, and
// std::runtime_error for a calibration file with no stories.
CalibFlags parse_calib_flags(const Args& a);

}  // namespace stk::cli
