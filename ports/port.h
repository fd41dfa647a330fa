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

// Copies `bytes` at `offset` of a mapped file into RAM with a read, not
// through the mapping (posix: pread), so the copy is the only resident one.
// Used for BitStack blocks entering a session's budget. The caller has
// checked that the range lies inside the file.
Status read_mapped(const MappedFile& file, uint64_t offset, void* dst, size_t bytes, Message* msg);
// Tells the system the mapped range will not be read through the mapping
// again, so the pages it holds need not stay resident (posix: madvise
// DONTNEED on the whole pages inside the range). A hint: may do nothing.
void release_mapped(const MappedFile& file, uint64_t offset, uint64_t bytes);
// Tells the system the mapped range is read front to back on every token, so
// it is worth backing with large pages (posix: madvise MADV_HUGEPAGE). Called
// before the range is first read: Linux then reads it into 2 MiB page-cache
// folios where the file system supports them (ext4 since Linux 6.16) and maps
// them whole, and a decode step streams the weights with far fewer page
// crossings and TLB misses. A hint: may do nothing.
void advise_streamed(const MappedFile& file, uint64_t offset, uint64_t bytes);

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

// Stack of a worker thread: what a stackrt call may use (STK_STACK_USE_BYTES
// of c_api/stackrt.h; c_api/stackrt.cpp checks that the two agree) plus room
// for the thread's own start-up and thread-local storage.
constexpr size_t kStackUseBytes = 96u * 1024u;
constexpr size_t kWorkerStackBytes = kStackUseBytes + 64u * 1024u;
Status thread_start(Thread* t, void (*fn)(void*), void* arg, Message* msg);
void thread_join(Thread* t);

// Sleeps while *word == expected (a futex wait); may return spuriously.
void wait_while_equal(std::atomic<uint32_t>* word, uint32_t expected);
// Wakes every thread sleeping on `word`.
void wake_all(std::atomic<uint32_t>* word);
// A hint inside spin loops (pause / yield instruction).
void cpu_relax();
// Lets another runnable thread have this core, if one is waiting for it
// (posix: sched_yield); returns at once otherwise. Called from spin loops.
void yield_core();

}  // namespace port
}  // namespace stk
