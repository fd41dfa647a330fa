// The kernel sets this build and CPU run, scalar first: what the kernel
// tests compare against their references, one set at a time.
#pragma once
#include <vector>

#include "runtime/kernels/matmul.h"

namespace stk::test {

inline std::vector<const KernelSet*> runnable_kernel_sets() {
  std::vector<const KernelSet*> sets;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon}) {
    if (const KernelSet* k = kernels_for(isa)) sets.push_back(k);
  }
  return sets;
}

}  // namespace stk::test
