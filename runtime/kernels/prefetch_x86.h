// Decode prefetching in the x86 kernels: a row's group scales, and the main stream.
//
// Every format keeps its scales in a plane of their own after the codes, so a
// decode step streams two regions at once. The hardware prefetcher follows
// the code stream but not the thin one beside it: each row's first scale load
// then misses to DRAM, its multiply waits, and the reorder buffer fills up
// behind it with loads that could have been in flight. Touching the scales of
// the row kSideRowsAhead ahead, a few lines per row, removes most of that
// stall: the Q8 kernel then streams about as fast as when every row's scales
// are in cache (TinyLlama-shaped Q8 decode, 2 threads: 30.0 -> 36.6 tok/s in
// back-to-back stk bench runs). Prefetching a whole chunk's scales up front
// did not help, perhaps because a burst of prefetches overflows the miss
// buffers and is dropped.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace stk {

constexpr uint32_t kSideRowsAhead = 2;

// How far ahead of its reads a decode kernel prefetches the main stream (a
// matrix's codes or kept values), in bytes. The hardware prefetcher alone
// left the AVX2 kernels at a fraction of their in-cache speed from DRAM (the
// AVX2 Q4K kernel, one core: 10.7 GB/s from L2, 2.9 from DRAM). 4 KiB covers
// DRAM latency at one core's streaming speed. Prefetches never fault, so
// running past the end of a matrix is harmless.
constexpr uint32_t kStreamAhead = 4096;

// Every cache line of [p, p + bytes).
inline void prefetch_span(const void* p, uint64_t bytes) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(63);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + bytes;
  for (uintptr_t a = first; a < end; a += 64) _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
}

}  // namespace stk
