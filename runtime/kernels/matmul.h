// Matrix kernels: one function per (weight format, instruction set).
//
// Contract shared by every kernel:
//   y[t*ldy + r] = sum_c W[r][c] * x[t*ldx + c]   for 0 <= t < n, r0 <= r < r1
// Each output row is computed by the same instruction sequence whatever range
// it is called with, which is what makes results independent of how rows are
// split among threads.
#pragma once
#include <cstddef>
#include <cstdint>

#include "runtime/weights.h"

namespace stk {

using MatmulFn = void (*)(const WeightView& w, const float* x, size_t ldx, uint32_t n, float* y, size_t ldy,
                          uint32_t r0, uint32_t r1);

enum class Isa { Scalar, Avx2, Avx512, Neon };

struct KernelSet {
  Isa isa;
  const char* name;
  MatmulFn f32;
  MatmulFn q8;
};

// The best kernel set this CPU runs (detected once, at first use).
const KernelSet& kernels_best();
// A specific set, or null when this build or CPU lacks it (for tests/bench).
const KernelSet* kernels_for(Isa isa);
// Kernel for a format from the best set; null for formats this build lacks.
MatmulFn matmul_for(WeightFormat format);

// Per-ISA sets, defined in the per-ISA files.
extern const KernelSet kKernelsScalar;
#if defined(__x86_64__)
extern const KernelSet kKernelsAvx2;
extern const KernelSet kKernelsAvx512;
#endif
#if defined(__ARM_NEON)
extern const KernelSet kKernelsNeon;
#endif

}  // namespace stk
