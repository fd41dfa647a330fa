#include "runtime/lowbit.h"

#include "runtime/checked_math.h"
#include "runtime/half.h"
#include "runtime/weights.h"

namespace stk {

bool lowbit_layout(WeightFormat f, uint32_t rows, uint32_t cols, const uint32_t params[4], LowbitLayout* out) {
  if (!is_lowbit_format(f) || !lowbit_group_ok(params[0]) || params[1] || params[2] || params[3]) return false;
  if (rows == 0 || cols == 0) return false;
  LowbitLayout L;
  L.bits = lowbit_bits(f);
  L.group = params[0];
  L.blocks_per_row = uint32_t((uint64_t(cols) + kLowbitBlock - 1) / kLowbitBlock);  // no uint32 wrap
  L.groups_per_row = uint32_t((uint64_t(cols) + L.group - 1) / L.group);
  L.block_bytes = lowbit_block_bytes(f);
  L.scale_halves = lowbit_scale_halves(f);
  L.row_code_bytes = uint64_t(L.blocks_per_row) * L.block_bytes;
  L.row_scale_bytes = uint64_t(L.groups_per_row) * L.scale_halves * 2;
  uint64_t codes, scales, aligned;
  if (!mul_ok(rows, L.row_code_bytes, &codes) || !add_ok(codes, kDataAlign, &aligned)) return false;
  L.scales_offset = align_up(codes, kDataAlign);
  if (!mul_ok(rows, L.row_scale_bytes, &scales) || !add_ok(L.scales_offset, scales, &L.total_bytes)) return false;
  *out = L;
  return true;
}

// Called by weight_dequantize_row for the low-bit formats.
void lowbit_dequantize_row(const WeightView& w, uint32_t row, float* out) {
  LowbitLayout L;
  if (!lowbit_layout(w.format, w.rows, w.cols, w.params, &L)) {
    for (uint32_t c = 0; c < w.cols; ++c) out[c] = 0.0f;
    return;
  }
  const uint8_t* codes = w.data + uint64_t(row) * L.row_code_bytes;
  const uint8_t* sc = w.data + L.scales_offset + uint64_t(row) * L.row_scale_bytes;
  const bool ternary = w.format == WeightFormat::T2;
  for (uint32_t c = 0; c < w.cols; ++c) {
    const uint32_t q = lowbit_code(codes + (c / kLowbitBlock) * L.block_bytes, L.bits, c % kLowbitBlock);
    const uint32_t g = c / L.group;
    uint16_t h[2] = {0, 0};
    std::memcpy(&h[0], sc + uint64_t(g) * 2, 2);
    if (!ternary) std::memcpy(&h[1], sc + (uint64_t(L.groups_per_row) + g) * 2, 2);
    out[c] = ternary ? half_to_float(h[0]) * (float(q) - 1.0f) : half_to_float(h[0]) * float(q) + half_to_float(h[1]);
  }
}

}  // namespace stk
