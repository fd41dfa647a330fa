#include "runtime/bitstack_signs16.h"

#include <cstring>

namespace stk {

void signs16_relayout(uint8_t* signs, uint32_t rows, uint32_t stride, bool to_groups, uint8_t* scratch) {
  const size_t group_bytes = signs16_scratch_bytes(stride);
  const uint32_t dwords = stride / 4;
  for (uint32_t g = 0; g + kSigns16Rows <= rows; g += kSigns16Rows) {
    uint8_t* plane = signs + size_t(g) * stride;
    std::memcpy(scratch, plane, group_bytes);
    for (uint32_t j = 0; j < kSigns16Rows; ++j) {
      for (uint32_t p = 0; p < dwords; ++p) {
        const size_t row_major = size_t(j) * stride + p * 4, grouped = size_t(p) * 64 + j * 4;
        if (to_groups) {
          std::memcpy(plane + grouped, scratch + row_major, 4);
        } else {
          std::memcpy(plane + row_major, scratch + grouped, 4);
        }
      }
    }
  }
}

}  // namespace stk
