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

const float kLowbitKFrac[64] = {
    1.0f,         0.989228013f, 0.978572062f, 0.968030897f, 0.957603281f, 0.947287991f, 0.937083817f, 0.926989563f,
    0.917004043f, 0.907126088f, 0.897354538f, 0.887688246f, 0.87812608f,  0.868666918f, 0.859309649f, 0.850053177f,
    0.840896415f, 0.83183829f,  0.822877739f, 0.814013711f, 0.805245166f, 0.796571076f, 0.787990423f, 0.7795022f,
    0.771105413f, 0.762799075f, 0.754582214f, 0.746453864f, 0.738413073f, 0.730458897f, 0.722590403f, 0.714806669f,
    0.707106781f, 0.699489836f, 0.691954941f, 0.684501211f, 0.677127773f, 0.669833762f, 0.662618322f, 0.655480606f,
    0.648419777f, 0.641435008f, 0.634525479f, 0.627690379f, 0.620928906f, 0.614240268f, 0.60762368f,  0.601078366f,
    0.594603558f, 0.588198496f, 0.581862429f, 0.575594615f, 0.569394317f, 0.563260809f, 0.557193371f, 0.551191292f,
    0.545253866f, 0.539380399f, 0.5335702f,   0.527822589f, 0.522136891f, 0.51651244f,  0.510948574f, 0.505444643f,
};

bool lowbitk_layout(WeightFormat f, uint32_t rows, uint32_t cols, const uint32_t params[4], LowbitKLayout* out) {
  if (!is_lowbitk_format(f) || !lowbitk_group_ok(params[0]) || params[2] < 2 || params[2] > 6 || params[3]) {
    return false;
  }
  float D;
  std::memcpy(&D, &params[1], 4);
  // D > 0 and finite (NaN fails both comparisons); the bound keeps D * 2^-63
  // and every product in the kernels far from overflow.
  if (!(D > 0.0f && D < 18446744073709551616.0f)) return false;
  if (rows == 0 || cols == 0) return false;
  LowbitKLayout L;
  L.bits = lowbit_bits(f);
  L.group = params[0];
  L.shift = params[2];
  L.ternary = f == WeightFormat::T2K;
  L.scale = D;
  L.blocks_per_row = uint32_t((uint64_t(cols) + kLowbitKBlock - 1) / kLowbitKBlock);
  L.groups_per_row = uint32_t((uint64_t(cols) + L.group - 1) / L.group);
  L.block_bytes = L.bits * kLowbitKBlock / 8;
  L.row_code_bytes = uint64_t(L.blocks_per_row) * L.block_bytes;
  L.row_scale_bytes = uint64_t(L.groups_per_row) * (L.ternary ? 1u : 2u);
  uint64_t codes, scales, aligned;
  if (!mul_ok(rows, L.row_code_bytes, &codes) || !add_ok(codes, kDataAlign, &aligned)) return false;
  L.scales_offset = align_up(codes, kDataAlign);
  if (!mul_ok(rows, L.row_scale_bytes, &scales) || !add_ok(L.scales_offset, scales, &L.total_bytes)) return false;
  *out = L;
  return true;
}

// Called by weight_dequantize_row for Q4K, Q3K, Q2K, T2K.
void lowbitk_dequantize_row(const WeightView& w, uint32_t row, float* out) {
  LowbitKLayout L;
  if (!lowbitk_layout(w.format, w.rows, w.cols, w.params, &L)) {
    for (uint32_t c = 0; c < w.cols; ++c) out[c] = 0.0f;
    return;
  }
  const uint8_t* codes = w.data + uint64_t(row) * L.row_code_bytes;
  const uint8_t* sc = w.data + L.scales_offset + uint64_t(row) * L.row_scale_bytes;
  const float zstep = float(1u << L.bits) / 256.0f;
  for (uint32_t c = 0; c < w.cols; ++c) {
    const uint32_t q = lowbitk_code(codes + (c / kLowbitKBlock) * L.block_bytes, L.bits, c % kLowbitKBlock);
    const uint32_t g = c / L.group;
    const float d = lowbitk_scale(L.scale, L.shift, sc[g]);
    const float zero = L.ternary ? 1.0f : float(sc[L.groups_per_row + g]) * zstep;
    out[c] = d * (float(q) - zero);
  }
}

}  // namespace stk
