// Memory read bandwidth of this machine, measured the way a decode step reads
// weights: threads streaming disjoint slices of a buffer far larger than cache.
#pragma once
#include <cstddef>
#include <cstdint>

namespace stk::bench {

// Best of `repeats` passes over `bytes` (rounded to 4 KiB) with `threads`
// threads; bytes per second.
double measure_read_bandwidth(size_t bytes, uint32_t threads, int repeats = 5);

}  // namespace stk::bench
