// Memory read bandwidth of this machine, measured the way a decode step reads
// weights: threads streaming disjoint slices of a buffer far larger than cache.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tools/page_memory.h"

namespace stk::bench {

class ReadBandwidth {
 public:
  // Allocates and fills `bytes` (rounded up to 4 KiB) once, in the pages the
  // models are timed in, so that repeated measurements between other timings
  // cost only the reads.
  ReadBandwidth(size_t bytes, host::PageSize pages);
  ~ReadBandwidth();
  ReadBandwidth(const ReadBandwidth&) = delete;
  ReadBandwidth& operator=(const ReadBandwidth&) = delete;
  // Best of `repeats` passes over the buffer with `threads` threads; bytes per second.
  double measure(uint32_t threads, int repeats = 3);

 private:
  uint8_t* buf_;
  size_t bytes_;
};

}  // namespace stk::bench
