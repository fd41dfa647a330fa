// Matrix kernels: one function per (weight format, instruction set).
//
// Contract shared by every kernel:
//   y[t*ldy + r] = sum_c W[r][c] * x[t*a.ldx + c]   for 0 <= t < a.n, r0 <= r < r1
// Each output row is computed by the same instruction sequence whatever range
// it is called with, which is what makes results independent of how rows are
// split among threads.
#pragma once
#include <cstddef>
#include <cstdint>

#include "runtime/weights.h"

namespace stk {

// The input of a matrix product: n rows of `cols` floats, and optionally an
// int8 copy (groups of 32 along cols, one float scale per group) made once
// per product for kernels that multiply in integers.
struct Activations {
  const float* x;
  size_t ldx;
  uint32_t n;
  const int8_t* q8;         // null unless the kernel set asked for it
  const float* q8_scales;   // [n][ceil(cols/32)]
  size_t ldq;               // int8 values per row of q8 (>= cols, padded)
};

using MatmulFn = void (*)(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);

enum class Isa { Scalar, Avx2, Avx512, Neon };

constexpr uint32_t kFormatSlots = 64;  // indexed by WeightFormat code

struct KernelSet {
  Isa isa;
  const char* name;
  MatmulFn fn[kFormatSlots];
  bool wants_q8_activations[kFormatSlots];
  // Its BitStack kernel reads sign planes fastest in 16-row groups, so the
  // block pool lays them out so (runtime/bitstack_signs16.h).
  bool bitstack_signs16;

  MatmulFn get(WeightFormat f) const { return uint32_t(f) < kFormatSlots ? fn[uint32_t(f)] : nullptr; }
};

// The best kernel set this CPU runs (detected once, at first use).
const KernelSet& kernels_best();
// A specific set, or null when this build or CPU lacks it (for tests/bench).
const KernelSet* kernels_for(Isa isa);

// Per-ISA tables, built in kernel_tables.cpp from the per-format kernels.
const KernelSet& kernel_table_scalar();
#if defined(__x86_64__)
const KernelSet& kernel_table_avx2();
const KernelSet& kernel_table_avx512();
#endif
#if defined(__ARM_NEON)
const KernelSet& kernel_table_neon();
#endif

}  // namespace stk
