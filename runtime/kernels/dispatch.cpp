// Picks the kernel set once from the CPU's features, so one x86-64 binary
// runs everywhere and uses the widest vectors the machine has.
#include <initializer_list>

#include "runtime/kernels/matmul.h"

namespace stk {

const KernelSet* kernels_for(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return &kKernelsScalar;
#if defined(__x86_64__)
    case Isa::Avx2:
      return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
                 ? &kKernelsAvx2
                 : nullptr;
    case Isa::Avx512:
      return (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c"))
                 ? &kKernelsAvx512
                 : nullptr;
#endif
#if defined(__ARM_NEON)
    case Isa::Neon:
      return &kKernelsNeon;
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
  return kKernelsScalar;
}
}  // namespace

const KernelSet& kernels_best() {
  static const KernelSet& best = detect();
  return best;
}

MatmulFn matmul_for(WeightFormat format) {
  const KernelSet& k = kernels_best();
  switch (format) {
    case WeightFormat::F32: return k.f32;
    case WeightFormat::Q8: return k.q8;
    default: return nullptr;
  }
}

}  // namespace stk
