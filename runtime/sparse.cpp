#include "runtime/sparse.h"

#include <cstring>

#include "runtime/checked_math.h"
#include "runtime/half.h"
#include "runtime/lowbit.h"

namespace stk {

bool sparse_layout(uint32_t rows, uint32_t cols, const uint32_t params[4], SparseLayout* out) {
  const uint32_t n = params[0], m = params[1];
  if (n < 1 || n >= m || m > kSparseMaxM || rows == 0 || cols == 0) return false;
  SparseLayout L;
  L.n = n;
  L.m = m;
  L.bits = sparse_index_bits(m);
  L.full_groups = cols / m;
  L.tail_len = cols % m;
  L.kept_full = L.full_groups * n;  // < cols, no overflow
  L.kept = L.kept_full + sparse_keep(n, m, L.tail_len);
  L.value_format = WeightFormat(params[2]);
  L.value_params[0] = params[3];
  L.value_params[1] = L.value_params[2] = L.value_params[3] = 0;
  switch (L.value_format) {
    case WeightFormat::F32:
      if (params[3] != 0) return false;
      break;
    case WeightFormat::Q8:
    case WeightFormat::Q4:
    case WeightFormat::Q3:
    case WeightFormat::Q2:
    case WeightFormat::T2:
      break;  // weight_format_bytes checks the group
    default:
      return false;  // never Sparse or BitStack inside Sparse
  }
  if (!weight_format_bytes(L.value_format, rows, L.kept, L.value_params, &L.values_bytes)) return false;
  uint64_t bits_per_row, index_bytes, end;
  if (!mul_ok(L.kept, L.bits, &bits_per_row)) return false;
  L.index_row_bytes = (bits_per_row + 7) / 8;
  if (!add_ok(L.values_bytes, kDataAlign, &end)) return false;
  L.index_offset = align_up(L.values_bytes, kDataAlign);
  if (!mul_ok(rows, L.index_row_bytes, &index_bytes) || !add_ok(L.index_offset, index_bytes, &end) ||
      !add_ok(end, kSparseIndexPad, &L.total_bytes)) {
    return false;
  }
  *out = L;
  return true;
}

float sparse_value(const WeightView& v, uint32_t r, uint32_t j) {
  const uint64_t at = uint64_t(r) * v.cols + j;
  switch (v.format) {
    case WeightFormat::F32: {
      float f;
      std::memcpy(&f, v.data + at * 4, 4);
      return f;
    }
    case WeightFormat::Q8: {
      uint16_t h;
      std::memcpy(&h, v.data + q8_scales_offset(v.rows, v.cols) + (uint64_t(r) * q8_groups_per_row(v.cols) + j / kQ8Group) * 2, 2);
      return float(int8_t(v.data[at])) * half_to_float(h);
    }
    case WeightFormat::Q4:
    case WeightFormat::Q3:
    case WeightFormat::Q2:
    case WeightFormat::T2: {
      LowbitLayout L;
      if (!lowbit_layout(v.format, v.rows, v.cols, v.params, &L)) return 0.0f;
      const uint8_t* blk = v.data + uint64_t(r) * L.row_code_bytes + (j / kLowbitBlock) * L.block_bytes;
      const uint32_t q = lowbit_code(blk, L.bits, j % kLowbitBlock);
      const uint8_t* sc = v.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes;
      uint16_t h[2] = {0, 0};  // d[groups] then m[groups] per row (runtime/lowbit.h)
      std::memcpy(&h[0], sc + (j / L.group) * 2, 2);
      if (L.scale_halves == 2) std::memcpy(&h[1], sc + (L.groups_per_row + j / L.group) * 2, 2);
      return v.format == WeightFormat::T2 ? half_to_float(h[0]) * (float(q) - 1.0f)
                                          : half_to_float(h[0]) * float(q) + half_to_float(h[1]);
    }
    default:
      return 0.0f;
  }
}

void sparse_values(const WeightView& v, uint32_t r, uint32_t j0, uint32_t count, float* out) {
  switch (v.format) {
    case WeightFormat::F32:
      std::memcpy(out, v.data + (uint64_t(r) * v.cols + j0) * 4, size_t(count) * 4);
      return;
    case WeightFormat::Q8: {
      const int8_t* q = reinterpret_cast<const int8_t*>(v.data) + uint64_t(r) * v.cols;
      const uint8_t* s = v.data + q8_scales_offset(v.rows, v.cols) + uint64_t(r) * q8_groups_per_row(v.cols) * 2;
      for (uint32_t i = 0; i < count; ++i) {
        const uint32_t j = j0 + i;
        uint16_t h;
        std::memcpy(&h, s + (j / kQ8Group) * 2, 2);
        out[i] = float(q[j]) * half_to_float(h);
      }
      return;
    }
    case WeightFormat::Q4:
    case WeightFormat::Q3:
    case WeightFormat::Q2:
    case WeightFormat::T2: {
      LowbitLayout L;
      if (!lowbit_layout(v.format, v.rows, v.cols, v.params, &L)) break;
      const uint8_t* codes = v.data + uint64_t(r) * L.row_code_bytes;
      const uint8_t* sc = v.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes;
      const bool ternary = v.format == WeightFormat::T2;
      for (uint32_t i = 0; i < count; ++i) {
        const uint32_t j = j0 + i;
        const uint32_t q = lowbit_code(codes + (j / kLowbitBlock) * L.block_bytes, L.bits, j % kLowbitBlock);
        uint16_t h[2] = {0, 0};  // d[groups] then m[groups] per row (runtime/lowbit.h)
        std::memcpy(&h[0], sc + (j / L.group) * 2, 2);
        if (L.scale_halves == 2) std::memcpy(&h[1], sc + (L.groups_per_row + j / L.group) * 2, 2);
        out[i] = ternary ? half_to_float(h[0]) * (float(q) - 1.0f) : half_to_float(h[0]) * float(q) + half_to_float(h[1]);
      }
      return;
    }
    default:
      break;
  }
  for (uint32_t i = 0; i < count; ++i) out[i] = 0.0f;
}

void sparse_dequantize_row(const WeightView& w, uint32_t row, float* out) {
  std::memset(out, 0, size_t(w.cols) * 4);
  SparseLayout L;
  if (!sparse_layout(w.rows, w.cols, w.params, &L)) return;
  const WeightView v = sparse_values_view(w, L);
  const uint8_t* idx = w.data + L.index_offset + uint64_t(row) * L.index_row_bytes;
  float buf[32];
  for (uint32_t j0 = 0; j0 < L.kept; j0 += 32) {
    const uint32_t count = L.kept - j0 < 32 ? L.kept - j0 : 32;
    sparse_values(v, row, j0, count, buf);
    for (uint32_t i = 0; i < count; ++i) {
      const uint32_t j = j0 + i;
      out[sparse_column(L, w.cols, j, sparse_index(idx, j, L.bits))] = buf[i];
    }
  }
}

}  // namespace stk
