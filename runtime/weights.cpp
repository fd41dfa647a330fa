#include "runtime/weights.h"

#include <cstring>

#include "runtime/checked_math.h"
#include "runtime/half.h"
#include "runtime/lowbit.h"
#include "runtime/sparse.h"

namespace stk {

uint64_t q8_scales_offset(uint32_t rows, uint32_t cols) {
  return align_up(uint64_t(rows) * cols, kDataAlign);
}

bool weight_format_bytes(WeightFormat format, uint32_t rows, uint32_t cols, const uint32_t params[4],
                         uint64_t* out) {
  uint64_t n;
  if (!mul_ok(rows, cols, &n)) return false;
  switch (format) {
    case WeightFormat::F32:
      (void)params;
      return mul_ok(n, 4, out);
    case WeightFormat::Q8: {
      if (params[0] != kQ8Group) return false;
      // rows*cols < 2^64 here and rows, cols < 2^32, so the sums below fit.
      uint64_t scales = uint64_t(rows) * q8_groups_per_row(cols) * 2;
      return add_ok(q8_scales_offset(rows, cols), scales, out);
    }
    case WeightFormat::Q4:
    case WeightFormat::Q3:
    case WeightFormat::Q2:
    case WeightFormat::T2: {
      LowbitLayout L;
      if (!lowbit_layout(format, rows, cols, params, &L)) return false;
      *out = L.total_bytes;
      return true;
    }
    case WeightFormat::Q4K:
    case WeightFormat::Q3K:
    case WeightFormat::Q2K:
    case WeightFormat::T2K: {
      LowbitKLayout L;
      if (!lowbitk_layout(format, rows, cols, params, &L)) return false;
      *out = L.total_bytes;
      return true;
    }
    case WeightFormat::Sparse: {  // N:M sparse (runtime/sparse.h)
      SparseLayout L;
      if (!sparse_layout(rows, cols, params, &L)) return false;
      *out = L.total_bytes;
      return true;
    }
    case WeightFormat::BitStack:
      // In the Weights section only the f32 input scale [cols] when params[1]
      // bit 0 is set; params[0] = residual blocks in the BitStackBlocks
      // section (runtime/bitstack_format.h).
      if (params[0] == 0 || params[0] > 65535 || params[1] > 1) return false;
      *out = (params[1] & 1u) ? uint64_t(cols) * 4 : 0;
      return true;
    default:
      return false;
  }
}

const char* weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::F32: return "f32";
    case WeightFormat::F16: return "f16";
    case WeightFormat::Q8: return "q8";
    case WeightFormat::Q4: return "q4";
    case WeightFormat::Q3: return "q3";
    case WeightFormat::Q2: return "q2";
    case WeightFormat::T2: return "t2";
    case WeightFormat::Q4K: return "q4k";
    case WeightFormat::Q3K: return "q3k";
    case WeightFormat::Q2K: return "q2k";
    case WeightFormat::T2K: return "t2k";
    case WeightFormat::Sparse: return "sparse";
    case WeightFormat::BitStack: return "bitstack";
    case WeightFormat::Invalid: break;
  }
  return "invalid";
}

void weight_dequantize_row(const WeightView& w, uint32_t row, float* out) {
  switch (w.format) {
    case WeightFormat::F32:
      std::memcpy(out, w.data + uint64_t(row) * w.cols * 4, size_t(w.cols) * 4);
      return;
    case WeightFormat::Q8: {
      const int8_t* q = reinterpret_cast<const int8_t*>(w.data) + uint64_t(row) * w.cols;
      const uint8_t* s = w.data + q8_scales_offset(w.rows, w.cols) + uint64_t(row) * q8_groups_per_row(w.cols) * 2;
      for (uint32_t c = 0; c < w.cols; ++c) {
        uint16_t h;
        std::memcpy(&h, s + (c / kQ8Group) * 2, 2);
        out[c] = float(q[c]) * half_to_float(h);
      }
      return;
    }
    case WeightFormat::Q4:
    case WeightFormat::Q3:
    case WeightFormat::Q2:
    case WeightFormat::T2:
      lowbit_dequantize_row(w, row, out);
      return;
    case WeightFormat::Q4K:
    case WeightFormat::Q3K:
    case WeightFormat::Q2K:
    case WeightFormat::T2K:
      lowbitk_dequantize_row(w, row, out);
      return;
    case WeightFormat::Sparse:
      sparse_dequantize_row(w, row, out);
      return;
    default:
      std::memset(out, 0, size_t(w.cols) * 4);
      return;
  }
}

}  // namespace stk
