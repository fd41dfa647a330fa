#include "runtime/thread_pool.h"

namespace stk {
namespace {

// How long a thread spins for the next job (a worker) or for the last chunks
// of one (the caller) before it sleeps in the kernel: long enough to bridge
// the gaps between the jobs of one token, short enough to give the core up
// soon when generation stops. A time, not a count of pause instructions: a
// pause takes from a few cycles to ~140 depending on the core (the 4000
// pauses this used to be took about 45 us on the Intel development VM).
constexpr uint64_t kSpinNs = 100000;
// While spinning, a thread offers its core to any other runnable thread
// this often. When another process takes a core, the pool's threads can end
// up sharing the other one, and a spinner then burns the time that the
// thread it waits for (the caller publishing the next job, or a worker
// finishing its chunk) needs to run. With stk bench --contend (stories110M,
// Q4, 2 threads, Intel VM) this kept 46-56% of the idle speed against
// 33-43% without, at the same idle speed (four alternating runs each).
constexpr uint64_t kYieldNs = 20000;
// Ports without a clock (now_ns() == 0) end a spin after this many pauses.
constexpr uint32_t kSpinPausesWithoutClock = 4000;

// Spins until done() or the spin time is up. done() leaves what it read in
// the caller's variables, which the caller checks again before sleeping.
template <class Done>
void spin_until(Done done) {
  const uint64_t start = port::now_ns();
  uint64_t last_yield = start;
  for (uint32_t i = 1;; ++i) {
    if (done()) return;
    port::cpu_relax();
    if (i % 32 != 0) continue;  // the clock is read every 32 pauses
    if (start == 0) {
      if (i >= kSpinPausesWithoutClock) return;
      continue;
    }
    const uint64_t now = port::now_ns();
    if (now - start >= kSpinNs) return;
    if (now - last_yield >= kYieldNs) {
      port::yield_core();
      last_yield = now;
    }
  }
}

// Thread r's chunks of a job with n chunks: [range_start(n, T, r), range_start(n, T, r + 1)).
uint32_t range_start(uint32_t n, uint32_t n_threads, uint32_t r) { return uint32_t(uint64_t(n) * r / n_threads); }

// Claims and runs chunks of job `seq` until none are left: first from the
// worker's own range, then from the others' (each from its front).
//
// A worker may arrive late, while the caller is already publishing the next
// job. The publication order in thread_pool_run (close every range to the old
// job, then the parameters, then n_chunks with release) guarantees that
// whoever reads a new n_chunks here also sees the ranges closed, so it can
// never claim a chunk index of the old job with the new job's count and
// function.
void drain(ThreadPool* p, uint32_t seq, uint32_t worker) {
  const uint32_t n = p->n_chunks.load(std::memory_order_acquire);
  ChunkFn fn = p->fn.load(std::memory_order_relaxed);
  void* ctx = p->ctx.load(std::memory_order_relaxed);
  const uint32_t n_threads = p->n_threads;
  for (uint32_t k = 0; k < n_threads; ++k) {
    const uint32_t r = worker + k < n_threads ? worker + k : worker + k - n_threads;
    const uint32_t end = range_start(n, n_threads, r + 1);
    std::atomic<uint64_t>& next = p->ranges[r].next;
    uint64_t v = next.load(std::memory_order_acquire);
    for (;;) {
      if (uint32_t(v >> 32) != seq || uint32_t(v) >= end) break;
      if (!next.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      fn(ctx, uint32_t(v), worker);
      uint32_t finished = p->done.fetch_add(1, std::memory_order_acq_rel) + 1;
      if (finished == n && p->caller_asleep.load(std::memory_order_seq_cst)) port::wake_all(&p->done);
      v = next.load(std::memory_order_acquire);
    }
  }
}

void worker_main(void* arg) {
  auto* a = static_cast<ThreadPool::WorkerArg*>(arg);
  ThreadPool* p = a->pool;
  uint32_t seen = p->job_seq.load(std::memory_order_acquire);
  for (;;) {
    uint32_t seq = seen;
    spin_until([&] {
      seq = p->job_seq.load(std::memory_order_acquire);
      return seq != seen || p->stop.load(std::memory_order_relaxed) != 0;
    });
    while (seq == seen && !p->stop.load(std::memory_order_acquire)) {
      p->sleepers.fetch_add(1, std::memory_order_seq_cst);
      if (p->job_seq.load(std::memory_order_seq_cst) == seen && !p->stop.load(std::memory_order_seq_cst)) {
        port::wait_while_equal(&p->job_seq, seen);
      }
      p->sleepers.fetch_sub(1, std::memory_order_seq_cst);
      seq = p->job_seq.load(std::memory_order_acquire);
    }
    if (p->stop.load(std::memory_order_acquire)) return;
    seen = seq;
    drain(p, seq, a->index);
  }
}

}  // namespace

Status thread_pool_start(ThreadPool* p, uint32_t n_threads, Message* msg) {
  if (n_threads < 1 || n_threads > kMaxThreads) {
    return fail(msg, Status::InvalidArgument, "thread count %u out of range 1..%u", n_threads, kMaxThreads);
  }
  p->n_threads = 1;
  p->job_seq.store(0);
  p->sleepers.store(0);
  p->stop.store(0);
  p->fn.store(nullptr);
  p->ctx.store(nullptr);
  p->n_chunks.store(0);
  for (uint32_t r = 0; r < kMaxThreads; ++r) p->ranges[r].next.store(0);
  p->done.store(0);
  p->caller_asleep.store(0);
  for (uint32_t i = 1; i < n_threads; ++i) {
    p->args[i] = {p, i};
    Status s = port::thread_start(&p->threads[i], worker_main, &p->args[i], msg);
    if (s != Status::Ok) {
      thread_pool_stop(p);
      return s;
    }
    p->n_threads = i + 1;
  }
  return Status::Ok;
}

void thread_pool_run(ThreadPool* p, ChunkFn fn, void* ctx, uint32_t n_chunks) {
  if (n_chunks == 0) return;
  if (p->n_threads == 1 || n_chunks == 1) {
    for (uint32_t c = 0; c < n_chunks; ++c) fn(ctx, c, 0);
    return;
  }
  // Publish the job. First move every range to the new sequence number and
  // its first chunk, which closes it to late workers still holding the
  // previous one; then the parameters; then n_chunks (release, see drain);
  // last the sequence number workers wait on. The previous job is complete,
  // so no worker is still running a chunk of it.
  const uint32_t seq = p->job_seq.load(std::memory_order_relaxed) + 1;
  for (uint32_t r = 0; r < p->n_threads; ++r) {
    p->ranges[r].next.store((uint64_t(seq) << 32) | range_start(n_chunks, p->n_threads, r), std::memory_order_seq_cst);
  }
  p->fn.store(fn, std::memory_order_relaxed);
  p->ctx.store(ctx, std::memory_order_relaxed);
  p->done.store(0, std::memory_order_relaxed);
  p->n_chunks.store(n_chunks, std::memory_order_release);
  p->job_seq.store(seq, std::memory_order_seq_cst);
  if (p->sleepers.load(std::memory_order_seq_cst) > 0) port::wake_all(&p->job_seq);

  drain(p, seq, 0);

  uint32_t d = 0;
  spin_until([&] {
    d = p->done.load(std::memory_order_acquire);
    return d == n_chunks;
  });
  while (d != n_chunks) {  // a worker holding the last chunk was descheduled
    p->caller_asleep.store(1, std::memory_order_seq_cst);
    d = p->done.load(std::memory_order_seq_cst);
    if (d != n_chunks) port::wait_while_equal(&p->done, d);
    p->caller_asleep.store(0, std::memory_order_relaxed);
    d = p->done.load(std::memory_order_acquire);
  }
}

void thread_pool_stop(ThreadPool* p) {
  p->stop.store(1, std::memory_order_seq_cst);
  p->job_seq.fetch_add(1, std::memory_order_seq_cst);
  port::wake_all(&p->job_seq);
  for (uint32_t i = 1; i < p->n_threads; ++i) port::thread_join(&p->threads[i]);
  p->n_threads = 1;
}

}  // namespace stk
