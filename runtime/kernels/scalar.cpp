// Portable reference kernels: the plain loops every SIMD kernel is tested
// against, and the kernels used on targets without SIMD (riscv64, Cortex-M).
#include <cstring>

#include "runtime/half.h"
#include "runtime/kernels/kernels.h"

namespace stk {

void matmul_f32_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const float* x = a.x;
  const size_t ldx = a.ldx;
  const uint32_t n = a.n;
  const float* W = reinterpret_cast<const float*>(w.data);
  const uint32_t cols = w.cols;
  for (uint32_t r = r0; r < r1; ++r) {
    const float* row = W + size_t(r) * cols;
    for (uint32_t t = 0; t < n; ++t) {
      const float* xt = x + t * ldx;
      float acc = 0.0f;
      for (uint32_t c = 0; c < cols; ++c) acc += row[c] * xt[c];
      y[t * ldy + r] = acc;
    }
  }
}

void matmul_q8_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const float* x = a.x;
  const size_t ldx = a.ldx;
  const uint32_t n = a.n;
  const uint32_t cols = w.cols;
  const uint32_t groups = q8_groups_per_row(cols);
  const int8_t* Q = reinterpret_cast<const int8_t*>(w.data);
  const uint8_t* S = w.data + q8_scales_offset(w.rows, cols);
  for (uint32_t r = r0; r < r1; ++r) {
    const int8_t* q = Q + size_t(r) * cols;
    const uint8_t* s = S + size_t(r) * groups * 2;
    for (uint32_t t = 0; t < n; ++t) {
      const float* xt = x + t * ldx;
      float acc = 0.0f;
      for (uint32_t g = 0; g < groups; ++g) {
        uint32_t c0 = g * kQ8Group;
        uint32_t c1 = c0 + kQ8Group < cols ? c0 + kQ8Group : cols;
        float gsum = 0.0f;
        for (uint32_t c = c0; c < c1; ++c) gsum += float(q[c]) * xt[c];
        uint16_t h;
        std::memcpy(&h, s + g * 2, 2);
        acc += gsum * half_to_float(h);
      }
      y[t * ldy + r] = acc;
    }
  }
}


}  // namespace stk
