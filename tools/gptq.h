// GPTQ (Frantar et al. 2022) for the low-bit formats: quantize a weight
// matrix column by column, feeding each column's rounding error back into the
// not-yet-quantized columns through the inverse Hessian of the layer's
// calibration inputs, so the layer's *output* error on real activations is
// minimised rather than the weight error.
#pragma once
#include <cstdint>
#include <vector>

#include "tools/lowbit_quant.h"

namespace stk::host {

struct GptqOptions {
  double damp = 0.01;     // added to the Hessian diagonal, times its mean
  bool act_order = true;  // quantize columns in order of decreasing H_ii
  bool search = true;     // error-minimising (clip) search for group (d, m), weighted by H_ii
  // Fit a group's (d, m) when its first column comes up, from the weights as
  // updated by the error feedback so far (false: from the original weights).
  bool dynamic_groups = true;
};

// H: cols x cols, row-major, sum of x x^T over calibration inputs (any scale).
LowbitTensor gptq_quantize(const float* w, uint32_t rows, uint32_t cols, FormatSpec spec,
                           const std::vector<double>& H, const GptqOptions& opt = GptqOptions());

// Output error of a quantized matrix on the calibration inputs:
// sum_r (w_r - q_r)^T H (w_r - q_r), with q given as dense floats.
double layer_output_error(const float* w, const float* q, uint32_t rows, uint32_t cols, const std::vector<double>& H);

}  // namespace stk::host
