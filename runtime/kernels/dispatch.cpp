// Picks the kernel set once from the CPU's features, so one x86-64 binary
// runs everywhere and uses the widest vectors the machine has.
#include <initializer_list>

#include "runtime/kernels/matmul.h"

namespace stk {

const KernelSet* kernels_for(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return &kernel_table_scalar();
#if defined(__x86_64__)
    case Isa::Avx2:
      return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
                 ? &kernel_table_avx2()
                 : nullptr;
    case Isa::Avx512:
      return (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c"))
                 ? &kernel_table_avx512()
                 : nullptr;
#endif
#if defined(__ARM_NEON)
    case Isa::Neon:
      return &kernel_table_neon();
#endif
    default:
      return nullptr;
  }
}

namespace {
const KernelSet& detect() {
  for (Isa isa : {Isa::Avx512, Isa::Avx2, Isa::Neon}) {
    if (const KernelSet* k = kernels_for(isa)) return *k;
  }
  return kernel_table_scalar();
}
}  // namespace

const KernelSet& kernels_best() {
  static const KernelSet& best = detect();
  return best;
}

}  // namespace stk
