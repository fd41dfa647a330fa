// STK_WIDEST_ISA before a function with plain loops: on x86-64 Linux GCC
// compiles it for AVX-512, AVX2 and the baseline and calls the widest the CPU
// has (target_clones, resolved once when the program loads); elsewhere it is
// compiled for the target as it is. In the runtime every clone computes the
// same numbers: it is built with -ffp-contract=off, and loops that sum keep a
// fixed order of their own (dot_f32), so wider vectors only do more lanes at
// once.
//
// Not under ThreadSanitizer: a clone's resolver runs while the program is
// being relocated, before TSan's runtime starts, and its instrumented code
// crashes there (the TSan build then compiles the baseline only).
#pragma once

#if defined(__x86_64__) && defined(__gnu_linux__) && !defined(__SANITIZE_THREAD__)
#define STK_WIDEST_ISA __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define STK_WIDEST_ISA
#endif
