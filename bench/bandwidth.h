// Memory read bandwidth of this machine, measured the way a decode step reads
// weights: threads streaming disjoint slices of a buffer far larger than cache.
#pragma once
#include <cstddef>
#include <cstdint>

namespace stk::bench {

class ReadBandwidth {
 public:
  // Allocates and fills `bytes` (rounded up to 4 KiB) once, so that repeated
  // measurements between other timings cost only the reads.
  explicit ReadBandwidth(size_t bytes);
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
