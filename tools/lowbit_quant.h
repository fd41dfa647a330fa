// Host-side quantizers for the low-bit formats of runtime/lowbit.h: group
// parameter fitting (optionally weighted by per-column importance, with a
// clipping search), round-to-nearest, and packing to the on-disk layout.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/format.h"
#include "runtime/lowbit.h"

namespace stk::host {

// A format plus its group size, e.g. "q4" (group 32), "q3g64", "t2g128", "q8", "f32".
struct FormatSpec {
  WeightFormat format = WeightFormat::F32;
  uint32_t group = 0;  // low-bit formats only
  std::string name() const;
  // Bits per weight of a rows x cols tensor, scales and padding included.
  double bpw(uint32_t rows, uint32_t cols) const;
};
FormatSpec parse_format_spec(const std::string& text);  // throws std::invalid_argument

constexpr uint32_t kDefaultLowbitGroup = 32;
constexpr uint32_t kDefaultLowbitKGroup = 16;  // q4k, q3k, q2k, t2k
constexpr uint32_t kDefaultLowbitKShift = 5;   // group scales D * 2^(-e/32)

// Q4/Q3/Q2/T2 or their quantized-scale variants Q4K/Q3K/Q2K/T2K.
inline bool is_host_lowbit(WeightFormat f) { return is_lowbit_format(f) || is_lowbitk_format(f); }

// The grid a Q4K/Q3K/Q2K/T2K tensor's group parameters must lie on
// (runtime/lowbit.h): d = D * 2^(-e/2^shift), m = -d * z * 2^(bits-8).
struct LowbitKGrid {
  WeightFormat format;
  float D;
  uint32_t shift;
  // Nearest grid point to (d, m) (d first, then m given the rounded d);
  // writes the decoded values back and returns the codes.
  void snap(float* d, float* m, uint8_t* e, uint8_t* z) const;
};

// Unpacked low-bit tensor: one code per weight plus per-(row, group) d and m
// (already rounded to fp16, the values the runtime will use).
struct LowbitTensor {
  WeightFormat format;
  uint32_t rows, cols, group;
  std::vector<uint8_t> codes;  // rows*cols
  std::vector<float> d, m;     // rows*groups_per_row; m unused for T2
  // Quantized-scale formats only: tensor scale, log step and the codes of
  // d and m (d, m above hold their decoded values).
  float kD = 0;
  uint32_t kshift = 0;
  std::vector<uint8_t> ke, kz;
  LowbitKGrid grid() const { return LowbitKGrid{format, kD, kshift}; }
  uint32_t groups_per_row() const { return uint32_t((uint64_t(cols) + group - 1) / group); }
  float value(uint32_t r, uint32_t c) const;
};

uint32_t lowbit_max_code(WeightFormat f);  // 15, 7, 3, 2
// Code nearest to w under (d, m) and the weight it decodes to.
uint32_t lowbit_quantize_value(WeightFormat f, float w, float d, float m);
inline float lowbit_decode_value(WeightFormat f, uint32_t q, float d, float m) {
  return lowbitk_base(f) == WeightFormat::T2 ? d * (float(q) - 1.0f) : d * float(q) + m;
}

// Fits (d, m) for n weights. importance (may be null) weights the squared
// error of each; search=false is plain min/max (absmax-mean for T2),
// search=true tries clipped ranges and refits by weighted least squares.
// With grid (quantized-scale formats), every candidate is snapped to it and
// the codes of the result are written to *e, *z.
void lowbit_fit_group(WeightFormat f, const float* w, const float* importance, uint32_t n, bool search, float* d,
                      float* m, const LowbitKGrid* grid = nullptr, uint8_t* e = nullptr, uint8_t* z = nullptr);

// Every weight of t as the runtime will decode it, row-major.
std::vector<float> dequantize_lowbit(const LowbitTensor& t);

// w (q's shape) rounded to the nearest code of q's own group grid, the
// straight-through projection distillation trains low-bit codes with: the
// decoded weights to *eff and the codes to *codes (either may be null).
void lowbit_round_to_grid(const LowbitTensor& q, const std::vector<float>& w, std::vector<float>* eff,
                          std::vector<uint8_t>* codes);

// Fits every group and rounds every weight to nearest.
LowbitTensor lowbit_quantize_rtn(const float* w, uint32_t rows, uint32_t cols, FormatSpec spec,
                                 const float* col_importance = nullptr, bool search = false);

// The runtime layout; fills params[4].
std::vector<uint8_t> lowbit_pack(const LowbitTensor& t, uint32_t params[4]);

}  // namespace stk::host
