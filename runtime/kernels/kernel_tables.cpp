// Files each kernel under its ISA and weight format.
#include "runtime/kernels/kernels.h"

namespace stk {
namespace {

void put(KernelSet* k, WeightFormat f, MatmulFn fn, bool wants_q8 = false) {
  k->fn[uint32_t(f)] = fn;
  k->wants_q8_activations[uint32_t(f)] = wants_q8;
}

KernelSet make_scalar() {
  KernelSet k{};
  k.isa = Isa::Scalar;
  k.name = "scalar";
  put(&k, WeightFormat::F32, matmul_f32_scalar);
  put(&k, WeightFormat::Q8, matmul_q8_scalar);
  return k;
}

#if defined(__x86_64__)
// SIMD tables start from the scalar one, so a format without a kernel for
// this ISA still runs (slowly) instead of failing.
KernelSet make_avx2() {
  KernelSet k = make_scalar();
  k.isa = Isa::Avx2;
  k.name = "avx2";
  put(&k, WeightFormat::F32, matmul_f32_avx2);
  put(&k, WeightFormat::Q8, matmul_q8_avx2);
  return k;
}

KernelSet make_avx512() {
  KernelSet k = make_avx2();
  k.isa = Isa::Avx512;
  k.name = "avx512";
  put(&k, WeightFormat::F32, matmul_f32_avx512);
  put(&k, WeightFormat::Q8, matmul_q8_avx512);
  return k;
}
#endif

}  // namespace

const KernelSet& kernel_table_scalar() {
  static const KernelSet k = make_scalar();
  return k;
}
#if defined(__x86_64__)
const KernelSet& kernel_table_avx2() {
  static const KernelSet k = make_avx2();
  return k;
}
const KernelSet& kernel_table_avx512() {
  static const KernelSet k = make_avx512();
  return k;
}
#endif

}  // namespace stk
