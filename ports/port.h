// The platform layer: the few things the runtime needs from an OS or a board.
//
// A port is one .cpp file that implements these functions (posix/, baremetal/);
// the build links exactly one. Nothing here is called on the token path except
// the thread wait/wake pair and the clock.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "runtime/status.h"

namespace stk {
namespace port {

// A read-only view of a whole model file. `handle` is the port's own.
struct MappedFile {
  const uint8_t* data;
  size_t size;
  uintptr_t handle;
};

// Maps a file read-only (posix: mmap). Ports without a file system return
// Status::Unsupported; such devices open models from memory instead.
Status map_file(const char* path, MappedFile* out, Message* msg);
void unmap_file(MappedFile* file);

// The one place the runtime takes memory from the system: the model handle at
// open time. Never called after a session is initialised.
void* alloc(size_t bytes);
void dealloc(void* p);

// Monotonic time in nanoseconds (0 if the board has no clock).
uint64_t now_ns();

// Worker threads. Ports without threads return Status::Unsupported from
// thread_start, and sessions are then limited to one thread.
// Lives where the caller put it (the session arena) for the thread's whole
// life, so starting a thread needs no allocation.
struct Thread {
  uintptr_t handle;
  void (*fn)(void*);
  void* arg;
};
Status thread_start(Thread* t, void (*fn)(void*), void* arg, Message* msg);
void thread_join(Thread* t);

// Sleeps while *word == expected (a futex wait); may return spuriously.
void wait_while_equal(std::atomic<uint32_t>* word, uint32_t expected);
// Wakes every thread sleeping on `word`.
void wake_all(std::atomic<uint32_t>* word);
// A hint inside spin loops (pause / yield instruction).
void cpu_relax();

}  // namespace port
}  // namespace stk
