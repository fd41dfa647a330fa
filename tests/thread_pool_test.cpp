// Tests for runtime/thread_pool.*: every chunk runs exactly once, worker ids
// are in range, results do not depend on the thread count, jobs run back to
// back without deadlock, idle workers give their cores back, and a pool can
// be stopped and started again.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <thread>
#include <vector>

#include "runtime/thread_pool.h"

namespace {

using stk::ThreadPool;

// ThreadPool holds atomics and lives in the arena in real use; here on the heap.
std::unique_ptr<ThreadPool> start_pool(uint32_t n_threads) {
  auto p = std::make_unique<ThreadPool>();
  char text[128] = {0};
  stk::Message m{text, sizeof text};
  EXPECT_EQ(stk::thread_pool_start(p.get(), n_threads, &m), stk::Status::Ok) << text;
  EXPECT_EQ(p->n_threads, n_threads);
  return p;
}

struct CountJob {
  std::vector<std::atomic<uint32_t>> runs;
  std::atomic<uint32_t> bad_worker{0};
  std::vector<std::atomic<uint32_t>> by_worker;
  uint32_t n_threads;
  CountJob(uint32_t chunks, uint32_t threads) : runs(chunks), by_worker(stk::kMaxThreads), n_threads(threads) {}
};

void count_chunk(void* ctx, uint32_t chunk, uint32_t worker) {
  auto* j = static_cast<CountJob*>(ctx);
  if (chunk >= j->runs.size() || worker >= j->n_threads) {
    j->bad_worker.fetch_add(1);
    return;
  }
  j->runs[chunk].fetch_add(1);
  j->by_worker[worker].fetch_add(1);
}

TEST(ThreadPool, EveryChunkRunsExactlyOnce) {
  for (uint32_t threads = 1; threads <= 4; ++threads) {
    auto pool = start_pool(threads);
    for (uint32_t chunks : {0u, 1u, 2u, 3u, 4u, 5u, 7u, 16u, 63u, 1000u}) {
      SCOPED_TRACE("threads " + std::to_string(threads) + " chunks " + std::to_string(chunks));
      for (int rep = 0; rep < 5; ++rep) {
        CountJob job(chunks, threads);
        stk::thread_pool_run(pool.get(), count_chunk, &job, chunks);
        EXPECT_EQ(job.bad_worker.load(), 0u);
        uint32_t total = 0;
        for (uint32_t c = 0; c < chunks; ++c) {
          ASSERT_EQ(job.runs[c].load(), 1u) << "chunk " << c;
        }
        for (uint32_t w = 0; w < stk::kMaxThreads; ++w) total += job.by_worker[w].load();
        EXPECT_EQ(total, chunks);
      }
    }
    stk::thread_pool_stop(pool.get());
  }
}

// The calling thread always takes part (worker 0), so a single-chunk job or
// a one-thread pool runs entirely on the caller.
struct CallerJob {
  std::thread::id caller;
  std::atomic<uint32_t> on_caller{0}, elsewhere{0}, worker0_elsewhere{0};
};
void caller_chunk(void* ctx, uint32_t, uint32_t worker) {
  auto* j = static_cast<CallerJob*>(ctx);
  const bool here = std::this_thread::get_id() == j->caller;
  (here ? j->on_caller : j->elsewhere).fetch_add(1);
  if (worker == 0 && !here) j->worker0_elsewhere.fetch_add(1);
  if (worker != 0 && here) j->worker0_elsewhere.fetch_add(1);
}

TEST(ThreadPool, WorkerZeroIsTheCaller) {
  for (uint32_t threads : {1u, 3u}) {
    auto pool = start_pool(threads);
    CallerJob j;
    j.caller = std::this_thread::get_id();
    stk::thread_pool_run(pool.get(), caller_chunk, &j, 1);
    EXPECT_EQ(j.on_caller.load(), 1u);
    CallerJob k;
    k.caller = std::this_thread::get_id();
    stk::thread_pool_run(pool.get(), caller_chunk, &k, 200);
    EXPECT_EQ(k.on_caller.load() + k.elsewhere.load(), 200u);
    EXPECT_EQ(k.worker0_elsewhere.load(), 0u) << "worker id 0 must be the calling thread, and only it";
    if (threads == 1) EXPECT_EQ(k.elsewhere.load(), 0u);
    stk::thread_pool_stop(pool.get());
  }
}

// A chunk computes a float reduction whose value depends on the order of its
// own additions only; the per-chunk results must be bitwise identical
// whatever the number of threads.
struct SumJob {
  std::vector<float> out;
};
void sum_chunk(void* ctx, uint32_t chunk, uint32_t) {
  auto* j = static_cast<SumJob*>(ctx);
  float acc = 0.0f;
  for (uint32_t i = 1; i <= 500 + chunk; ++i) acc += std::sin(float(i * (chunk + 1))) / float(i);
  j->out[chunk] = acc;
}

TEST(ThreadPool, ResultsDoNotDependOnTheThreadCount) {
  const uint32_t chunks = 97;
  std::vector<float> reference;
  for (uint32_t threads = 1; threads <= 4; ++threads) {
    auto pool = start_pool(threads);
    SumJob j{std::vector<float>(chunks, std::nanf(""))};
    stk::thread_pool_run(pool.get(), sum_chunk, &j, chunks);
    stk::thread_pool_stop(pool.get());
    if (threads == 1) {
      reference = j.out;
      // Independent check of the single-threaded run: a plain loop.
      for (uint32_t c = 0; c < chunks; ++c) {
        SumJob one{std::vector<float>(chunks)};
        sum_chunk(&one, c, 0);
        ASSERT_EQ(std::memcmp(&one.out[c], &reference[c], sizeof(float)), 0);
      }
    } else {
      ASSERT_EQ(std::memcmp(j.out.data(), reference.data(), chunks * sizeof(float)), 0) << "threads " << threads;
    }
  }
}

TEST(ThreadPool, TenThousandBackToBackJobs) {
  for (uint32_t threads : {2u, 4u}) {
    auto pool = start_pool(threads);
    std::atomic<uint64_t> total{0};
    auto add = [](void* ctx, uint32_t chunk, uint32_t) {
      static_cast<std::atomic<uint64_t>*>(ctx)->fetch_add(chunk + 1, std::memory_order_relaxed);
    };
    uint64_t expect = 0;
    for (uint32_t job = 0; job < 10000; ++job) {
      const uint32_t chunks = 1 + job % 9;  // includes 1-chunk jobs that stay on the caller
      stk::thread_pool_run(pool.get(), add, &total, chunks);
      expect += uint64_t(chunks) * (chunks + 1) / 2;
      // The job is complete when run returns: nothing may be still in flight.
      ASSERT_EQ(total.load(), expect) << "job " << job;
    }
    stk::thread_pool_stop(pool.get());
  }
}

// A chunk that blocks for a while makes the caller run out of chunks and
// sleep until the straggler finishes (the futex path of thread_pool_run).
TEST(ThreadPool, WaitsForASlowChunk) {
  auto pool = start_pool(3);
  std::atomic<uint32_t> done{0};
  auto slow = [](void* ctx, uint32_t chunk, uint32_t) {
    if (chunk == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    static_cast<std::atomic<uint32_t>*>(ctx)->fetch_add(1);
  };
  for (int rep = 0; rep < 5; ++rep) {
    done = 0;
    stk::thread_pool_run(pool.get(), slow, &done, 8);
    EXPECT_EQ(done.load(), 8u);
  }
  stk::thread_pool_stop(pool.get());
}

// A worker stalled inside a chunk of its own range does not hold up the rest
// of that range: the caller claims those chunks too. The worker waits until
// every other chunk is done (or 5 s pass), so a caller that kept to its own
// range would leave the worker's range unrun and the counts below short.
TEST(ThreadPool, OthersTakeOverAStalledWorkersRange) {
  auto pool = start_pool(2);
  struct Job {
    uint32_t n = 64;
    std::atomic<uint32_t> by_caller{0}, by_worker{0};
    std::atomic<bool> released_by_count{false};
  };
  auto fn = [](void* ctx, uint32_t, uint32_t worker) {
    auto* j = static_cast<Job*>(ctx);
    if (worker == 0) {
      // Slow enough that the worker is surely awake and holds a chunk.
      std::this_thread::sleep_for(std::chrono::microseconds(500));
      j->by_caller.fetch_add(1);
      return;
    }
    if (j->by_worker.fetch_add(1) == 0) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (j->by_caller.load() + 1 < j->n && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      j->released_by_count = j->by_caller.load() + 1 >= j->n;
    }
  };
  for (int rep = 0; rep < 3; ++rep) {
    Job job;
    stk::thread_pool_run(pool.get(), fn, &job, job.n);
    EXPECT_EQ(job.by_caller.load() + job.by_worker.load(), job.n);
    if (job.by_worker.load() > 0) {  // the worker woke in time to take a chunk
      EXPECT_TRUE(job.released_by_count.load());
      EXPECT_EQ(job.by_worker.load(), 1u);
    }
  }
  stk::thread_pool_stop(pool.get());
}

// Idle workers go to sleep after spinning; a job after a pause must wake them.
TEST(ThreadPool, WakesSleepingWorkers) {
  auto pool = start_pool(4);
  for (int rep = 0; rep < 3; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    CountJob job(64, 4);
    stk::thread_pool_run(pool.get(), count_chunk, &job, 64);
    for (uint32_t c = 0; c < 64; ++c) ASSERT_EQ(job.runs[c].load(), 1u);
  }
  stk::thread_pool_stop(pool.get());
}

// A pool between jobs must give its cores back: workers spin for a short
// while after a job, then sleep, so a session that waits (for the user, for
// the next prompt) costs no CPU. Over 300 ms of idling after a burst of jobs,
// the process may use a few milliseconds, not the ~300 ms per worker that a
// worker spinning until the next job would.
TEST(ThreadPool, IdleWorkersGiveTheirCoresBack) {
  auto pool = start_pool(3);
  for (int rep = 0; rep < 100; ++rep) {  // leave the workers spinning, as after a token
    CountJob job(32, 3);
    stk::thread_pool_run(pool.get(), count_chunk, &job, 32);
  }
  timespec c0{}, c1{};
  ASSERT_EQ(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1), 0);
  const double cpu_ms = (c1.tv_sec - c0.tv_sec) * 1e3 + (c1.tv_nsec - c0.tv_nsec) / 1e6;
  EXPECT_LT(cpu_ms, 60.0) << "idle workers used " << cpu_ms << " ms of CPU in 300 ms";
  stk::thread_pool_stop(pool.get());
}

TEST(ThreadPool, StopAndRestart) {
  auto pool = std::make_unique<ThreadPool>();
  for (uint32_t threads : {3u, 1u, 4u, 2u}) {
    ASSERT_EQ(stk::thread_pool_start(pool.get(), threads, nullptr), stk::Status::Ok);
    EXPECT_EQ(pool->n_threads, threads);
    CountJob job(50, threads);
    stk::thread_pool_run(pool.get(), count_chunk, &job, 50);
    for (uint32_t c = 0; c < 50; ++c) ASSERT_EQ(job.runs[c].load(), 1u);
    EXPECT_EQ(job.bad_worker.load(), 0u);
    stk::thread_pool_stop(pool.get());
    EXPECT_EQ(pool->n_threads, 1u);
  }
  // Stopping twice is harmless; a stopped pool still runs jobs on the caller.
  stk::thread_pool_stop(pool.get());
  CountJob job(10, 1);
  stk::thread_pool_run(pool.get(), count_chunk, &job, 10);
  for (uint32_t c = 0; c < 10; ++c) EXPECT_EQ(job.runs[c].load(), 1u);
}

TEST(ThreadPool, RejectsBadThreadCounts) {
  for (uint32_t threads : {0u, stk::kMaxThreads + 1, 0xFFFFFFFFu}) {
    auto pool = std::make_unique<ThreadPool>();
    char text[128] = {0};
    stk::Message m{text, sizeof text};
    EXPECT_EQ(stk::thread_pool_start(pool.get(), threads, &m), stk::Status::InvalidArgument);
    EXPECT_NE(std::string(text).find("thread count"), std::string::npos) << text;
  }
}

}  // namespace
