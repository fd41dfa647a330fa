#include "bench/core_speed.h"

#include "runtime/widest_isa.h"

#include <chrono>
#include <thread>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace stk::bench {
namespace {

typedef float F32x16 __attribute__((vector_size(64)));

// Eight independent multiply-add chains on 16-float vectors: bound by the
// core's vector throughput, not by memory or by one chain's latency. The
// result is returned so the work stays.
STK_WIDEST_ISA float spin_vectors(long iterations) {
  F32x16 a[8];
  for (int k = 0; k < 8; ++k) a[k] = F32x16{} + 1.0f + float(k);
  const F32x16 m = F32x16{} + 0.999999f, c = F32x16{} + 1e-6f;
  for (long i = 0; i < iterations; ++i)
    for (int k = 0; k < 8; ++k) a[k] = a[k] * m + c;
  F32x16 s = a[0];
  for (int k = 1; k < 8; ++k) s += a[k];
  float total = 0;
  for (int l = 0; l < 16; ++l) total += s[l];
  return total;
}

}  // namespace

std::vector<CoreSpeed> measure_core_speeds() {
  std::vector<CoreSpeed> out;
#if defined(__linux__)
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return out;
  constexpr long kIterations = 1L << 20;  // about 10 ms on a 3 GHz AVX-512 core
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    double best = 0;
    bool pinned = false;
    volatile float sink = 0;
    // A thread of its own, so the caller's affinity is left as it was.
    std::thread probe([&] {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      pinned = pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
      if (!pinned) return;
      for (int r = 0; r < 3; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        sink = sink + spin_vectors(kIterations);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (s > 0 && kIterations / s > best) best = kIterations / s;
      }
    });
    probe.join();
    if (pinned) out.push_back({cpu, best});
  }
#endif
  return out;
}

}  // namespace stk::bench
