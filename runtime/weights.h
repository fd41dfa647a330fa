// A weight tensor as the kernels see it: format, shape and bytes in place.
#pragma once
#include <cstdint>

#include "runtime/format.h"
#include "runtime/status.h"

namespace stk {

struct WeightView {
  WeightFormat format;
  uint32_t rows;  // output features
  uint32_t cols;  // input features
  const uint8_t* data;
  uint64_t bytes;
  uint32_t params[4];
};

// Exact byte size of a rows x cols tensor in `format`; false when the format
// is unknown to this build or the size overflows.
bool weight_format_bytes(WeightFormat format, uint32_t rows, uint32_t cols, const uint32_t params[4],
                         uint64_t* out);

// Name used in messages and by `stk info` ("f32", "q8", ...).
const char* weight_format_name(WeightFormat format);

// Decodes one row to floats (embedding lookup, tests, tools).
void weight_dequantize_row(const WeightView& w, uint32_t row, float* out);

// Low-bit formats (runtime/lowbit.h); w.format must be Q4, Q3, Q2 or T2.
void lowbit_dequantize_row(const WeightView& w, uint32_t row, float* out);
// Q4K, Q3K, Q2K, T2K (runtime/lowbit.h).
void lowbitk_dequantize_row(const WeightView& w, uint32_t row, float* out);

// Q8 helpers shared by the encoder, decoder and kernels.
inline uint32_t q8_groups_per_row(uint32_t cols) { return (cols + kQ8Group - 1) / kQ8Group; }
// Offset of the fp16 scale plane inside a Q8 tensor.
uint64_t q8_scales_offset(uint32_t rows, uint32_t cols);

}  // namespace stk
