// STK_WIDEST_ISA before a host-side function with plain loops: on x86-64 GCC
// compiles it for AVX-512, AVX2 and the baseline and calls the widest the CPU
// has (target_clones); elsewhere it is compiled for the target as it is.
#pragma once

#if defined(__x86_64__)
#define STK_WIDEST_ISA __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define STK_WIDEST_ISA
#endif
