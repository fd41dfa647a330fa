// How fast each CPU this process may run on is right now, for one fixed
// SIMD loop pinned to it in turn.
//
// On a shared machine (a VM whose virtual CPUs share physical cores with other
// tenants) one CPU can run the same instructions much slower than another:
// on the 2-core development VM the second CPU ran this loop at 0.55-0.6 of
// the first's speed for stretches of minutes. Compute-bound kernels (BitStack)
// then gain far less than 2x from a second thread while memory-bound ones
// (Q8, Q4) still scale, so `stk bench` prints this beside its bandwidth to
// say what its 2-thread rows ran on.
#pragma once
#include <vector>

namespace stk::bench {

struct CoreSpeed {
  int cpu;          // the CPU number the loop was pinned to
  double per_sec;   // loop iterations per second, best of a few runs
};

// One entry per CPU in this process's affinity mask, in CPU order; empty where
// the platform cannot pin a thread (not Linux).
std::vector<CoreSpeed> measure_core_speeds();

}  // namespace stk::bench
