#include "tools/pack_flags.h"

#include <stdexcept>

#include "tools/calib.h"
#include "tools/story_ppl.h"

namespace stk::cli {

CalibFlags parse_calib_flags(const Args& a) {
  CalibFlags f;
  if (a.has("--calib")) {
    const size_t n = size_t(a.integer("--calib-stories", 64, 1, 1000000));
    f.calib = host::story_range(host::split_stories(read_text_file(a.get("--calib"))), 0, n);
    if (f.calib.empty()) throw std::runtime_error(a.get("--calib") + ": no calibration stories");
  }
  f.distill_epochs = uint32_t(a.integer("--distill", 0, 0, 1000));
  if (f.distill_epochs > 0 && f.calib.empty()) throw UsageError("--distill needs --calib TEXT");
  f.distill_samples = uint32_t(a.integer("--distill-samples", 0, 0, 1000000));
  if (f.distill_samples > 0 && f.distill_epochs == 0) throw UsageError("--distill-samples needs --distill EPOCHS");
  return f;
}

}  // namespace stk::cli
