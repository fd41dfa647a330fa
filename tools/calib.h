// Calibration statistics gathered by running stackrt itself: the session's
// ActivationObserver sees the input of every matrix product, and we sum
// x x^T per weight tensor (the GPTQ Hessian, up to a factor).
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tools/stk_writer.h"

namespace stk::host {

struct CalibHessian {
  uint32_t cols = 0;
  uint64_t samples = 0;    // activation rows summed
  std::vector<double> h;   // cols x cols
};
using HessianMap = std::map<std::string, CalibHessian>;  // by tensor name ("layers.0.attn.wq", ...)

// Serialises `model`, runs it over `stories` (story-ppl windows) and returns
// the Hessians of the tensors named in `wanted` (all matrices when empty).
HessianMap collect_hessians(const PackedModel& model, const std::vector<std::string>& stories, uint32_t threads,
                           const std::set<std::string>& wanted = {});

// Stories [first, last) of a text split at blank lines; last is clamped.
std::vector<std::string> story_range(const std::vector<std::string>& all, size_t first, size_t last);

}  // namespace stk::host
