#include "bench/bandwidth.h"

#include "runtime/widest_isa.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace stk::bench {
namespace {

// Sums the 64-bit words of p[0, n) (n a multiple of 256) in four
// independent 64-byte accumulators; the sum is returned and published, so the
// loads stay. The loop is written once with GCC vector types and, on x86,
// compiled for AVX-512, AVX2 and the baseline with the widest picked at run
// time: narrower loads leave bandwidth unused (on the AVX-512 development VM
// SSE2 loads read 24-26 GB/s with one thread where 512-bit loads read 31-34),
// and a roofline below what the decode kernels themselves read would
// overstate their efficiency.
typedef uint64_t U64x8 __attribute__((vector_size(64)));

STK_WIDEST_ISA uint64_t sum_slice(const uint8_t* p, size_t n) {
  U64x8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
  for (size_t i = 0; i < n; i += 256) {
    U64x8 w0, w1, w2, w3;  // one load each (an array of them was also stored to the stack)
    std::memcpy(&w0, p + i, 64);
    std::memcpy(&w1, p + i + 64, 64);
    std::memcpy(&w2, p + i + 128, 64);
    std::memcpy(&w3, p + i + 192, 64);
    a0 += w0, a1 += w1, a2 += w2, a3 += w3;
  }
  const U64x8 s = (a0 + a1) + (a2 + a3);
  uint64_t total = 0;
  for (int k = 0; k < 8; ++k) total += s[k];
  return total;
}

}  // namespace

ReadBandwidth::ReadBandwidth(size_t bytes, host::PageSize pages) : bytes_((bytes + 4095) / 4096 * 4096) {
  buf_ = static_cast<uint8_t*>(host::alloc_pages(bytes_, pages));
  for (size_t i = 0; i < bytes_; i += 8) {
    const uint64_t v = i * 0x9E3779B97F4A7C15ull;
    std::memcpy(buf_ + i, &v, 8);
  }
}

ReadBandwidth::~ReadBandwidth() { std::free(buf_); }

double ReadBandwidth::measure(uint32_t threads, int repeats) {
  double best = 0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < repeats; ++r) {
    std::vector<uint64_t> sums(threads, 0);
    const size_t slice = bytes_ / threads / 256 * 256;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (uint32_t t = 1; t < threads; ++t)
      pool.emplace_back([&, t] { sums[t] = sum_slice(buf_ + t * slice, slice); });
    sums[0] = sum_slice(buf_, slice);
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (uint64_t v : sums) sink = sink + v;
    best = std::max(best, double(slice) * threads / s);
  }
  (void)sink;
  return best;
}

}  // namespace stk::bench
