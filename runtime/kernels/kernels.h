// Declarations of every (format, ISA) kernel; kernel_tables.cpp files them
// into per-ISA tables. Add a line here and one there for a new kernel.
#pragma once
#include "runtime/kernels/matmul.h"

namespace stk {

void matmul_f32_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_q8_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);

#if defined(__x86_64__)
void matmul_f32_avx2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_q8_avx2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_f32_avx512(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_q8_avx512(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
#endif

}  // namespace stk
