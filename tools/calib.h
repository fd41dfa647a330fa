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

// The inputs of the wanted per-layer matrices, one row of `cols` floats per
// token in call order, from running `model` over `stories` (the windows and
// batches of collect_hessians, so two models' inputs pair up row by row).
std::map<std::string, std::vector<float>> collect_inputs(const PackedModel& model,
                                                         const std::vector<std::string>& stories, uint32_t threads,
                                                         const std::set<std::string>& wanted);

// Fitting a layer to the *dense* model's outputs from the compressed model's
// inputs, min_v ||Xd w - Xs v||^2 for each row w: with H = Xs^T Xs this is
// (w' - v)^T H (w' - v) + const for w' = (H + damp)^-1 Xs^T Xd w. Replaces w
// (rows x cols) by w' and returns H in *H (damp: times the mean of diag H).
// The inputs are collect_inputs rows of the same tokens.
void dense_target(const std::vector<float>& xs, const std::vector<float>& xd, uint32_t cols, double damp,
                  std::vector<float>& w, uint32_t rows, std::vector<double>* H);

// Stories [first, last) of a text split at blank lines; last is clamped.
std::vector<std::string> story_range(const std::vector<std::string>& all, size_t first, size_t last);

}  // namespace stk::host
