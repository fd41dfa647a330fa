#include "bench/busy_neighbour.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

namespace stk::bench {

BusyNeighbour::BusyNeighbour() : pid_(fork()) {
  if (pid_ < 0) throw std::runtime_error("cannot fork a busy neighbour process");
  if (pid_ == 0) {
    volatile unsigned long spin = 0;
    for (;;) spin = spin + 1;  // pure CPU, no memory traffic to speak of
  }
  usleep(20000);  // let it get scheduled before timing starts
}

BusyNeighbour::~BusyNeighbour() {
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
}

}  // namespace stk::bench
