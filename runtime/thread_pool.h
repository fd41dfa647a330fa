// Worker threads that share parallel loops with the calling thread.
//
// Work is split into chunks that threads claim one at a time, so a thread the
// OS has descheduled simply claims fewer chunks instead of stalling the
// others, and which thread ran a chunk never changes its result. Each thread
// owns a contiguous range of the chunks and claims from its front, then
// helps the others by claiming from theirs: consecutive chunks of one thread
// are neighbouring rows, one stream the hardware prefetcher follows (a
// shared counter handed each thread every other chunk, and each jump to a
// new chunk started the stream afresh). Idle workers spin briefly (a forward
// pass issues jobs back to back), offering their core to other threads now
// and then, and then sleep in the kernel, so a busy shared device is not
// robbed of a core.
#pragma once
#include <atomic>
#include <cstdint>

#include "ports/port.h"

namespace stk {

constexpr uint32_t kMaxThreads = 16;

using ChunkFn = void (*)(void* ctx, uint32_t chunk, uint32_t worker);

struct ThreadPool {
  uint32_t n_threads;  // including the caller
  port::Thread threads[kMaxThreads];
  std::atomic<uint32_t> job_seq;   // futex word: bumped once per job
  std::atomic<uint32_t> sleepers;  // workers asleep on job_seq
  std::atomic<uint32_t> stop;
  // The current job; read by workers only after they observe job_seq.
  std::atomic<ChunkFn> fn;
  std::atomic<void*> ctx;
  std::atomic<uint32_t> n_chunks;
  // Per thread: (job seq << 32) | next unclaimed chunk of its range.
  struct alignas(64) Range {
    std::atomic<uint64_t> next;
  } ranges[kMaxThreads];
  std::atomic<uint32_t> done;        // futex word: chunks finished
  std::atomic<uint32_t> caller_asleep;
  struct WorkerArg {
    ThreadPool* pool;
    uint32_t index;
  } args[kMaxThreads];
};

// Starts n_threads-1 workers (n_threads >= 1). `pool` lives in the arena.
Status thread_pool_start(ThreadPool* pool, uint32_t n_threads, Message* msg);
// Runs fn(ctx, chunk, worker) for every chunk in [0, n_chunks) and returns
// when all are done. worker is in [0, n_threads): 0 is the caller.
void thread_pool_run(ThreadPool* pool, ChunkFn fn, void* ctx, uint32_t n_chunks);
void thread_pool_stop(ThreadPool* pool);

}  // namespace stk
