#include "bench/bandwidth.h"

#if defined(__x86_64__)
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

// Sums the 64-bit words of p[0, n) (n a multiple of 256) with four
// independent accumulators; the sum is returned and published, so the loads
// stay. The widest loads the CPU has: narrower ones leave bandwidth unused
// (on the AVX-512 development VM, SSE2 loads read 24-26 GB/s with one thread
// where 512-bit loads read 31-34), and a roofline below what the decode
// kernels themselves read would overstate their efficiency.
#if defined(__x86_64__)
__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_set1_epi64(0), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 192));
  }
  const __m512i s = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
  uint64_t out[8];
  std::memcpy(out, &s, 64);
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

__attribute__((target("avx2"))) uint64_t sum_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  uint64_t out[4];
  std::memcpy(out, &s, 32);
  return out[0] + out[1] + out[2] + out[3];
}

uint64_t sum_sse2(const uint8_t* p, size_t n) {
  __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 64) {
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

uint64_t sum_slice(const uint8_t* p, size_t n) {
  static const auto best = __builtin_cpu_supports("avx512f") ? sum_avx512
                           : __builtin_cpu_supports("avx2")  ? sum_avx2
                                                             : sum_sse2;
  return best(p, n);
}
#else
// Portable version (ARM, RISC-V cross builds): eight independent 64-bit sums.
uint64_t sum_slice(const uint8_t* p, size_t n) {
  uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < n; i += 64) {
    uint64_t w[8];
    std::memcpy(w, p + i, 64);
    for (int k = 0; k < 8; ++k) a[k] += w[k];
  }
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}
#endif

}  // namespace

ReadBandwidth::ReadBandwidth(size_t bytes) : bytes_((bytes + 4095) / 4096 * 4096) {
  buf_ = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes_));
  if (!buf_) throw std::runtime_error("bandwidth: out of memory");
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
