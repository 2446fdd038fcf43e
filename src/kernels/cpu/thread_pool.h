// A persistent thread pool for the CPU kernels: fixed contiguous chunks claimed dynamically, no
// thread creation per call.
//
// Decode calls parallel_for about 200 times per token, so the wake-up and join must cost a few
// microseconds at most. Workers spin on a generation counter for `spin` after their last job (long
// enough to bridge the gap between the kernels of one decode step, ~0.1-0.5 ms) and then sleep on
// it with C++20 atomic wait/notify (a futex on Linux).
//
// Dynamic claiming: the chunk bounds are fixed by (n, k), but which thread runs a chunk is not.
// The caller and the workers take the next unclaimed chunk from one shared counter until none is
// left, and the caller waits only for chunks that were claimed and are still running. So on a
// loaded machine a worker that is not scheduled when a job starts simply claims nothing, and the
// caller does the job alone instead of waiting a scheduler slice for the worker's share (the
// failure of a static half-and-half split). Results stay independent of scheduling: the kernels
// compute every output within one chunk in a fixed order, whoever runs it.
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

// The least work of one dynamically claimed chunk: about 13 us of bf16 GEMV on one core (64 rows of
// 1024 columns, a 128 KiB sequential stream), so claiming (one CAS) costs nothing next to it,
// while an op that is worth sharing has many chunks to balance between a busy and an idle core.
constexpr int64_t kMinWorkPerChunk = int64_t{1} << 16;
// The chunk count of a dynamically shared op of `work` units: 1 when the op is not worth a second
// thread (chunks_for_work(work) == 1), else work / kMinWorkPerChunk (at least 2).
inline int64_t dynamic_chunks_for_work(int64_t work) {
  return chunks_for_work(work) > 1 ? work / kMinWorkPerChunk : 1;
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

  // The most chunks one job may have (the claim counter's width).
  static constexpr int64_t kMaxChunks = 0xFFFF;

  // Calls fn(begin, end) on k = min(n, chunks, kMaxChunks) contiguous chunks covering [0, n)
  // exactly once, chunk c = [n * c / k, n * (c + 1) / k), and returns when all have finished.
  // chunks <= 0 means threads(). k may exceed threads(): the caller and the workers claim chunks
  // in order from a shared counter, each chunk is run by exactly one thread, and any thread may
  // run any number of them (a chunk index is not a thread index). k == 1 runs fn(0, n) on the
  // caller without waking anyone. n <= 0: no call. Not reentrant: fn must not call parallel_for on
  // the same pool, and one pool serves one calling thread at a time. fn must not throw.
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn,
                    int64_t chunks = 0);

 private:
  void worker_loop();
  // Claims and runs chunks of the job whose claim word is current; returns the generation of the
  // job it found exhausted (so a worker knows which generation it has finished with).
  uint32_t claim_and_run();

  int threads_ = 1;
  std::chrono::nanoseconds spin_;
  std::vector<std::thread> workers_;

  // The current job, written by the caller before it publishes claim_ (release). A thread reads
  // them only after claiming a chunk of this job (acquire on claim_), and the caller rewrites
  // them only after done_ says every chunk has finished, so no reader ever sees the next job's.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0;

  // Claim word: generation (high 32 bits) | chunk count (bits 16-31) | next unclaimed chunk (low
  // 16 bits). A claim is a CAS that bumps the low field while it is below the count, so a thread
  // that read an old generation can never claim a chunk of the next job without seeing it.
  alignas(64) std::atomic<uint64_t> claim_{0};
  // Chunks of the current job finished; the caller waits on it.
  alignas(64) std::atomic<int> done_{0};
  // The workers sleep on it (32 bits: the futex width, so wait/notify need no proxy); it takes the
  // claim word's generation after the word is published. Only equality is compared.
  alignas(64) std::atomic<uint32_t> generation_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace fusecheck::cpu
