// Another process that takes a core: a forked child spinning at normal
// priority until stopped. `stk bench --contend` times decode with one running,
// to show how the thread pool degrades when a device's cores are shared
// (workers that spin forever would fight it for the core; ours sleep).
#pragma once
#include <sys/types.h>

namespace stk::bench {

class BusyNeighbour {
 public:
  BusyNeighbour();   // starts spinning; throws std::runtime_error if fork fails
  ~BusyNeighbour();  // kills and reaps it
  BusyNeighbour(const BusyNeighbour&) = delete;
  BusyNeighbour& operator=(const BusyNeighbour&) = delete;

 private:
  pid_t pid_;
};

}  // namespace stk::bench
