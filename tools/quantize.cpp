#include "tools/quantize.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "runtime/half.h"
#include "runtime/lowbit.h"
#include "runtime/weights.h"
#include "tools/lowbit_quant.h"

namespace stk::host {
namespace {

// Symmetric int8 per group of 32 along the input. The scale is rounded to
// fp16 *before* quantizing so the int8 values are chosen against the scale
// the runtime will actually multiply by.
std::vector<uint8_t> encode_q8(const float* w, uint32_t rows, uint32_t cols) {
  uint64_t bytes = 0;
  const uint32_t params[4] = {kQ8Group, 0, 0, 0};
  if (!weight_format_bytes(WeightFormat::Q8, rows, cols, params, &bytes)) {
    throw std::invalid_argument("q8 tensor too large");
  }
  std::vector<uint8_t> out(bytes, 0);
  const uint32_t groups = q8_groups_per_row(cols);
  const uint64_t scales_at = q8_scales_offset(rows, cols);
  for (uint32_t r = 0; r < rows; ++r) {
    const float* row = w + uint64_t(r) * cols;
    int8_t* q = reinterpret_cast<int8_t*>(out.data()) + uint64_t(r) * cols;
    for (uint32_t g = 0; g < groups; ++g) {
      uint32_t c0 = g * kQ8Group, c1 = std::min(cols, c0 + kQ8Group);
      float amax = 0.0f;
      for (uint32_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(row[c]));
      // fp16 scales reach 65504, so |w| up to 127 * 65504 is representable;
      // anything larger (or NaN/inf) is a broken checkpoint, not a weight.
      if (!(amax <= 127.0f * 65504.0f)) {
        throw std::invalid_argument("q8: weight magnitude " + std::to_string(amax) + " in row " +
                                    std::to_string(r) + " is not finite or exceeds the fp16 scale range");
      }
      uint16_t h = float_to_half(amax / 127.0f);
      // Below fp16's normal range (amax < ~0.0078) the rounded scale can be
      // far below amax/127 (or 0), and the group max would then be clamped by
      // more than half a step: take the next larger half instead.
      if (h < 0x7C00u && half_to_float(h) * 127.5f < amax) ++h;
      float scale = half_to_float(h);
      float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
      for (uint32_t c = c0; c < c1; ++c) {
        float v = std::nearbyint(row[c] * inv);
        q[c] = int8_t(std::max(-127.0f, std::min(127.0f, v)));
      }
      std::memcpy(out.data() + scales_at + (uint64_t(r) * groups + g) * 2, &h, 2);
    }
  }
  return out;
}

}  // namespace

std::vector<uint8_t> encode_weights(const float* w, uint32_t rows, uint32_t cols, WeightFormat format,
                                    uint32_t params[4]) {
  std::memset(params, 0, 4 * sizeof(uint32_t));
  switch (format) {
    case WeightFormat::F32: {
      std::vector<uint8_t> out(uint64_t(rows) * cols * 4);
      std::memcpy(out.data(), w, out.size());
      return out;
    }
    case WeightFormat::Q8:
      params[0] = kQ8Group;
      return encode_q8(w, rows, cols);
    case WeightFormat::Q4:
    case WeightFormat::Q3:
    case WeightFormat::Q2:
    case WeightFormat::T2: {  // round-to-nearest, default group (tools/lowbit_quant.h)
      FormatSpec spec;
      spec.format = format;
      spec.group = kDefaultLowbitGroup;
      return lowbit_pack(lowbit_quantize_rtn(w, rows, cols, spec), params);
    }
    case WeightFormat::Q4K:
    case WeightFormat::Q3K:
    case WeightFormat::Q2K:
    case WeightFormat::T2K: {  // round-to-nearest, default group 16
      FormatSpec spec;
      spec.format = format;
      spec.group = kDefaultLowbitKGroup;
      return lowbit_pack(lowbit_quantize_rtn(w, rows, cols, spec), params);
    }
    default:
      throw std::invalid_argument(std::string("the packer cannot produce format ") + weight_format_name(format));
  }
}

WeightFormat parse_weight_format(const std::string& name) {
  for (WeightFormat f : {WeightFormat::F32, WeightFormat::Q8, WeightFormat::Q4, WeightFormat::Q3, WeightFormat::Q2,
                         WeightFormat::T2, WeightFormat::Q4K, WeightFormat::Q3K, WeightFormat::Q2K, WeightFormat::T2K}) {
    if (name == weight_format_name(f)) return f;
  }
  throw std::invalid_argument("unknown weight format '" + name +
                              "' (expected f32, q8, q4, q3, q2, t2, q4k, q3k, q2k or t2k)");
}

}  // namespace stk::host
