#include "bench/bandwidth.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

namespace stk::bench {
namespace {

// Sums 64-bit words with four independent SSE2 accumulators (the compiler
// cannot drop the loads: the sum is returned and published).
#if defined(__SSE2__)
uint64_t sum_slice(const uint8_t* p, size_t n) {
  __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm_add_epi64(a0, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i)));
    a1 = _mm_add_epi64(a1, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 16)));
    a2 = _mm_add_epi64(a2, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 32)));
    a3 = _mm_add_epi64(a3, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 48)));
  }
  const __m128i s = _mm_add_epi64(_mm_add_epi64(a0, a1), _mm_add_epi64(a2, a3));
  uint64_t out[2];
  std::memcpy(out, &s, 16);
  return out[0] + out[1];
}
#else
// Portable version (ARM, RISC-V cross builds): eight independent 64-bit sums.
uint64_t sum_slice(const uint8_t* p, size_t n) {
  uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i + 64 <= n; i += 64) {
    uint64_t w[8];
    std::memcpy(w, p + i, 64);
    for (int k = 0; k < 8; ++k) a[k] += w[k];
  }
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}
#endif

}  // namespace

double measure_read_bandwidth(size_t bytes, uint32_t threads, int repeats) {
  bytes = (bytes + 4095) / 4096 * 4096;
  uint8_t* buf = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
  if (!buf) throw std::runtime_error("bandwidth: out of memory");
  for (size_t i = 0; i < bytes; i += 8) {
    const uint64_t v = i * 0x9E3779B97F4A7C15ull;
    std::memcpy(buf + i, &v, 8);
  }
  double best = 0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < repeats; ++r) {
    std::vector<uint64_t> sums(threads, 0);
    const size_t slice = bytes / threads / 64 * 64;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (uint32_t t = 1; t < threads; ++t)
      pool.emplace_back([&, t] { sums[t] = sum_slice(buf + t * slice, slice); });
    sums[0] = sum_slice(buf, slice);
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (uint64_t v : sums) sink = sink + v;
    best = std::max(best, double(slice) * threads / s);
  }
  (void)sink;
  std::free(buf);
  return best;
}

}  // namespace stk::bench
