// Declarations of every (format, ISA) kernel; kernel_tables.cpp files them
// into per-ISA tables. Add a line here and one there for a new kernel.
#pragma once
#include "runtime/kernels/matmul.h"

namespace stk {

void matmul_f32_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
// Q8, int8 activations (scalar.cpp); the float-activation product is kept for
// tests to measure what the int8 activations cost.
void matmul_q8_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_q8_f32act_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                             uint32_t r1);
// BitStack residual blocks (runtime/block_pool.h); bitstack_scalar.cpp, bitstack_avx2.cpp,
// bitstack_avx512.cpp, bitstack_vnni.cpp, bitstack_vbmi.cpp, bitstack_neon.cpp.
void matmul_bitstack_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                            uint32_t r1);
// Q4/Q3/Q2/T2 (runtime/lowbit.h), int8 activations; lowbit_scalar.cpp.
void matmul_lowbit_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_lowbit_f32act_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                                 uint32_t r1);
// Q4K/Q3K/Q2K/T2K (quantized group scales, runtime/lowbit.h), int8 activations;
// lowbit_scalar.cpp. The x86 tables (lowbitk_avx2/lowbitk_vnni below) and the
// NEON table (lowbitk_neon below) have their own.
void matmul_lowbitk_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                           uint32_t r1);

// N:M sparse (runtime/sparse.h), float activations; sparse_scalar.cpp, sparse_avx2.cpp, sparse_avx512.cpp.
void matmul_sparse_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);

#if defined(__x86_64__)
void matmul_sparse_avx2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_sparse_avx512(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
// int8 activations, for Q8/Q4 values and N:M = 1:2, 2:4, 4:8, 8:16 (others: the avx512 kernel); sparse_vnni.cpp.
void matmul_sparse_vnni(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
// int8 activations, for Q8/Q4 values and N:M = 1:2, 2:4, 4:8, 8:16 (others: the avx2 kernel); sparse_avx2_int8.cpp.
void matmul_sparse_avx2_int8(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                             uint32_t r1);
void matmul_f32_avx2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_q8_avx2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_f32_avx512(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
// AVX2 + FMA + F16C; int8-quantized z per tile, vpmaddubsw on 0/1 sign bytes.
void matmul_bitstack_avx2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                          uint32_t r1);
void matmul_bitstack_avx512(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                            uint32_t r1);
// Needs AVX-512 VNNI (filed only when the CPU has it); int8-quantized z per tile.
void matmul_bitstack_vnni(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                          uint32_t r1);
// Needs AVX-512 VBMI and VNNI; table lookup over 4 sign bits at a time (filed
// instead of matmul_bitstack_vnni when the CPU has VBMI).
void matmul_bitstack_vbmi(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                          uint32_t r1);
// Needs AVX-512 VNNI; int8 activations like matmul_q8_scalar (q8_vnni.cpp).
// Without VNNI the AVX-512 table keeps matmul_q8_avx2.
void matmul_q8_vnni(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
// Low-bit kernels: lowbit_avx2.cpp (namespace lowbit_avx2), lowbit_avx512.cpp (lowbit_vnni).
#define STK_LOWBIT_DECL(ns)                                                                                  \
  namespace ns {                                                                                             \
  void matmul_q4(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1); \
  void matmul_q3(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1); \
  void matmul_q2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1); \
  void matmul_t2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1); \
  }
STK_LOWBIT_DECL(lowbit_avx2)
STK_LOWBIT_DECL(lowbit_vnni)
#undef STK_LOWBIT_DECL
// Q4K/Q3K/Q2K/T2K: lowbitk_avx2.cpp (namespace lowbitk_avx2), lowbitk_avx512.cpp
// (lowbitk_vnni, needs AVX-512 VNNI).
#define STK_LOWBITK_DECL(ns)                                                                                  \
  namespace ns {                                                                                              \
  void matmul_q4k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1); \
  void matmul_q3k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1); \
  void matmul_q2k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1); \
  void matmul_t2k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1); \
  }
STK_LOWBITK_DECL(lowbitk_avx2)
STK_LOWBITK_DECL(lowbitk_vnni)
#undef STK_LOWBITK_DECL
#endif

#if defined(__ARM_NEON)
void matmul_f32_neon(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_q8_neon(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
// Float activations; sparse_neon.cpp, bitstack_neon.cpp.
void matmul_sparse_neon(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_bitstack_neon(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                          uint32_t r1);
// Low-bit kernels, int8 activations; lowbit_neon.cpp.
namespace lowbit_neon {
void matmul_q4(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_q3(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_q2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_t2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
}  // namespace lowbit_neon
// Q4K/Q3K/Q2K/T2K (quantized group scales), int8 activations; lowbitk_neon.cpp.
namespace lowbitk_neon {
void matmul_q4k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_q3k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_q2k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
void matmul_t2k(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1);
}  // namespace lowbitk_neon
#endif

}  // namespace stk
