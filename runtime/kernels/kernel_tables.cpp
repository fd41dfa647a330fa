// Files each kernel under its ISA and weight format.
#include <initializer_list>

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
  put(&k, WeightFormat::Q8, matmul_q8_scalar, true);
  put(&k, WeightFormat::BitStack, matmul_bitstack_scalar);
  put(&k, WeightFormat::Sparse, matmul_sparse_scalar);
  for (WeightFormat f : {WeightFormat::Q4, WeightFormat::Q3, WeightFormat::Q2, WeightFormat::T2}) {
    put(&k, f, matmul_lowbit_scalar, true);
  }
  // Quantized-scale variants: make_avx2/make_avx512 and make_neon override
  // these; a table without its own kernels runs them through the scalar one.
  for (WeightFormat f : {WeightFormat::Q4K, WeightFormat::Q3K, WeightFormat::Q2K, WeightFormat::T2K}) {
    put(&k, f, matmul_lowbitk_scalar, true);
  }
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
  put(&k, WeightFormat::Q8, matmul_q8_avx2, true);
  put(&k, WeightFormat::Q4, lowbit_avx2::matmul_q4, true);
  put(&k, WeightFormat::Q3, lowbit_avx2::matmul_q3, true);
  put(&k, WeightFormat::Q2, lowbit_avx2::matmul_q2, true);
  put(&k, WeightFormat::T2, lowbit_avx2::matmul_t2, true);
  put(&k, WeightFormat::Q4K, lowbitk_avx2::matmul_q4k, true);
  put(&k, WeightFormat::Q3K, lowbitk_avx2::matmul_q3k, true);
  put(&k, WeightFormat::Q2K, lowbitk_avx2::matmul_q2k, true);
  put(&k, WeightFormat::T2K, lowbitk_avx2::matmul_t2k, true);
  put(&k, WeightFormat::Sparse, matmul_sparse_avx2_int8, true);  // falls back to matmul_sparse_avx2 itself
  put(&k, WeightFormat::BitStack, matmul_bitstack_avx2);
  return k;
}

KernelSet make_avx512() {
  KernelSet k = make_avx2();
  k.isa = Isa::Avx512;
  k.name = "avx512";
  put(&k, WeightFormat::F32, matmul_f32_avx512);
  put(&k, WeightFormat::BitStack, matmul_bitstack_avx512);
  put(&k, WeightFormat::Sparse, matmul_sparse_avx512);
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi")) {
    put(&k, WeightFormat::Sparse, matmul_sparse_vnni, true);  // falls back to matmul_sparse_avx512 itself
  }
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi")) {  // table lookup (vpermb)
    put(&k, WeightFormat::BitStack, matmul_bitstack_vbmi);
    k.bitstack_signs16 = true;
  } else if (__builtin_cpu_supports("avx512vnni")) {  // one vpdpbusd per rank and 64 signs
    put(&k, WeightFormat::BitStack, matmul_bitstack_vnni);
  }
  if (__builtin_cpu_supports("avx512vnni")) put(&k, WeightFormat::Q8, matmul_q8_vnni, true);
  if (__builtin_cpu_supports("avx512vnni")) {  // else the AVX2 low-bit kernels stay
    put(&k, WeightFormat::Q4, lowbit_vnni::matmul_q4, true);
    put(&k, WeightFormat::Q3, lowbit_vnni::matmul_q3, true);
    put(&k, WeightFormat::Q2, lowbit_vnni::matmul_q2, true);
    put(&k, WeightFormat::T2, lowbit_vnni::matmul_t2, true);
    put(&k, WeightFormat::Q4K, lowbitk_vnni::matmul_q4k, true);
    put(&k, WeightFormat::Q3K, lowbitk_vnni::matmul_q3k, true);
    put(&k, WeightFormat::Q2K, lowbitk_vnni::matmul_q2k, true);
    put(&k, WeightFormat::T2K, lowbitk_vnni::matmul_t2k, true);
  }
  return k;
}
#endif

#if defined(__ARM_NEON)
// AArch64 and ARMv7-A NEON; starts from the scalar table like the x86 sets.
KernelSet make_neon() {
  KernelSet k = make_scalar();
  k.isa = Isa::Neon;
  k.name = "neon";
  put(&k, WeightFormat::F32, matmul_f32_neon);
  put(&k, WeightFormat::Q8, matmul_q8_neon, true);
  put(&k, WeightFormat::Q4, lowbit_neon::matmul_q4, true);
  put(&k, WeightFormat::Q3, lowbit_neon::matmul_q3, true);
  put(&k, WeightFormat::Q2, lowbit_neon::matmul_q2, true);
  put(&k, WeightFormat::T2, lowbit_neon::matmul_t2, true);
  put(&k, WeightFormat::Q4K, lowbitk_neon::matmul_q4k, true);
  put(&k, WeightFormat::Q3K, lowbitk_neon::matmul_q3k, true);
  put(&k, WeightFormat::Q2K, lowbitk_neon::matmul_q2k, true);
  put(&k, WeightFormat::T2K, lowbitk_neon::matmul_t2k, true);
  put(&k, WeightFormat::Sparse, matmul_sparse_neon);
  put(&k, WeightFormat::BitStack, matmul_bitstack_neon);
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
#if defined(__ARM_NEON)
const KernelSet& kernel_table_neon() {
  static const KernelSet k = make_neon();
  return k;
}
#endif

}  // namespace stk
