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

// Q8 weights times the int8 copy of the activations (groups of 32, one float
// scale xs each, kernel table asks for it): per group an exact integer sum,
// then y = sum_g d_g * xs_g * sum_c w_c a_c. Every ISA computes these integer
// sums; only the float accumulation order differs.
void matmul_q8_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const uint32_t n = a.n;
  const uint32_t cols = w.cols;
  const uint32_t groups = q8_groups_per_row(cols);
  const int8_t* Q = reinterpret_cast<const int8_t*>(w.data);
  const uint8_t* S = w.data + q8_scales_offset(w.rows, cols);
  for (uint32_t r = r0; r < r1; ++r) {
    const int8_t* q = Q + size_t(r) * cols;
    const uint8_t* s = S + size_t(r) * groups * 2;
    for (uint32_t t = 0; t < n; ++t) {
      const int8_t* aq = a.q8 + t * a.ldq;
      const float* as = a.q8_scales + size_t(t) * groups;
      float acc = 0.0f;
      for (uint32_t g = 0; g < groups; ++g) {
        uint32_t c0 = g * kQ8Group;
        uint32_t c1 = c0 + kQ8Group < cols ? c0 + kQ8Group : cols;
        int32_t isum = 0;
        for (uint32_t c = c0; c < c1; ++c) isum += int32_t(q[c]) * aq[c];
        uint16_t h;
        std::memcpy(&h, s + g * 2, 2);
        acc += (half_to_float(h) * as[g]) * float(isum);
      }
      y[t * ldy + r] = acc;
    }
  }
}

// The float-activation Q8 product (no int8 rounding of x): tests use it to
// measure what the int8 activations cost in accuracy.
void matmul_q8_f32act_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                             uint32_t r1) {
  const uint32_t cols = w.cols;
  const uint32_t groups = q8_groups_per_row(cols);
  const int8_t* Q = reinterpret_cast<const int8_t*>(w.data);
  const uint8_t* S = w.data + q8_scales_offset(w.rows, cols);
  for (uint32_t r = r0; r < r1; ++r) {
    const int8_t* q = Q + size_t(r) * cols;
    const uint8_t* s = S + size_t(r) * groups * 2;
    for (uint32_t t = 0; t < a.n; ++t) {
      const float* xt = a.x + t * a.ldx;
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
