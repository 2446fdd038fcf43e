// A persistent thread pool for the CPU kernels: static partitioning, no thread creation per call.
//
// Decode calls parallel_for about 200 times per token, so the wake-up and join must cost a few
// microseconds at most. Workers spin on a generation counter for `spin` after their last job (long
// enough to bridge the gap between the kernels of one decode step, ~0.1-0.5 ms) and then sleep on
// it with C++20 atomic wait/notify (a futex on Linux); the calling thread runs chunk 0 itself.
//
// Static partitioning ([0, n) cut into `threads()` contiguous chunks, chunk c to thread c) keeps
// each worker on the same rows call after call, so a weight slice that fits a core's cache stays
// there, and it makes results independent of scheduling (the kernels' results never depend on the
// partition anyway: every output is computed by exactly one thread in a fixed order).
#pragma once

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace fusecheck::cpu {

// The least work worth a thread of its own, in multiply-adds (or values touched): about 50 us of
// a bf16 GEMV on one core. Smaller ops run on the calling thread: waking a worker costs
// microseconds on an idle machine and up to a scheduler slice on a loaded one, so splitting a
// small op makes it slower, and a small model slower with more threads.
constexpr int64_t kMinWorkPerThread = int64_t{1} << 18;
// The chunk count for `work` units of that kind of work: in [1, INT64_MAX).
inline int64_t chunks_for_work(int64_t work) {
  return work / kMinWorkPerThread > 1 ? work / kMinWorkPerThread : 1;
}

// Physical cores of this machine (distinct core ids per package in /sys), falling back to
// std::thread::hardware_concurrency(); at least 1.
int physical_core_count();

class ThreadPool {
 public:
  // threads: total threads including the caller (threads - 1 workers are started). <= 0 means
  // physical_core_count(). spin: how long an idle worker (and a caller waiting for workers) polls
  // before sleeping; shorter wastes less CPU on a shared machine, longer saves futex wake-ups.
  explicit ThreadPool(int threads = 0,
                      std::chrono::microseconds spin = std::chrono::microseconds(100));
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }

  // Calls fn(begin, end) on k = min(n, threads(), max_chunks) contiguous chunks covering [0, n)
  // exactly once, chunk c = [n * c / k, n * (c + 1) / k), and returns when all have finished. The
  // caller runs chunk 0; k == 1 runs fn(0, n) on the caller without waking anyone. n <= 0: no
  // call. Not reentrant: fn must not call parallel_for on the same pool, and one pool serves one
  // calling thread at a time. fn must not throw.
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn,
                    int64_t max_chunks = INT64_MAX);

 private:
  void worker_loop(int index);
  void run_chunk(int chunk);

  int threads_ = 1;
  std::chrono::nanoseconds spin_;
  std::vector<std::thread> workers_;

  // The current job, written by the caller before it bumps generation_ (release) and read by the
  // workers after they observe the new generation (acquire).
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0;
  bool stop_ = false;

  // Separate cache lines: the workers poll generation_, the caller polls pending_. 32 bits: the
  // futex width, so wait/notify need no proxy; only equality is compared, so wrapping is harmless.
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
};

}  // namespace fusecheck::cpu
