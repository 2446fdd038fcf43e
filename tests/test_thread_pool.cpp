// ThreadPool: fixed contiguous chunks claimed dynamically, every index exactly once, any n,
// repeated use, under contention and with a stalled thread.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "kernels/cpu/thread_pool.h"

namespace fusecheck::cpu {
namespace {

// Runs one parallel_for and checks the chunks: each index once, contiguous, in the documented
// split (chunk c = [n c / k, n (c + 1) / k)), k = min(n, chunks or threads()).
void check_cover(ThreadPool& pool, int64_t n, int64_t want_chunks = 0) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(std::max<int64_t>(n, 1)));
  std::mutex mu;
  std::set<std::pair<int64_t, int64_t>> chunks;
  pool.parallel_for(
      n,
      [&](int64_t b, int64_t e) {
        {
          std::lock_guard<std::mutex> lock(mu);
          chunks.emplace(b, e);
        }
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
      },
      want_chunks);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "index " << i << " of n " << n;
  if (n <= 0) {
    EXPECT_TRUE(chunks.empty());
    return;
  }
  const int64_t k = std::min<int64_t>(n, want_chunks > 0 ? want_chunks : pool.threads());
  ASSERT_EQ(static_cast<int64_t>(chunks.size()), k) << "n " << n;
  int64_t c = 0;
  for (const auto& [b, e] : chunks) {
    EXPECT_EQ(b, n * c / k);
    EXPECT_EQ(e, n * (c + 1) / k);
    EXPECT_LT(b, e);
    ++c;
  }
}

TEST(ThreadPool, DefaultSizeIsPhysicalCores) {
  ThreadPool pool;
  EXPECT_EQ(pool.threads(), physical_core_count());
  EXPECT_GE(pool.threads(), 1);
}

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 4, 7}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.threads(), threads);
    for (int64_t n : {0, 1, 2, 3, 5, 6, 7, 8, 13, 100, 1001, 65536}) check_cover(pool, n);
  }
}

TEST(ThreadPool, NegativeAndZeroNDoNotCall) {
  ThreadPool pool(3);
  int calls = 0;
  pool.parallel_for(0, [&](int64_t, int64_t) { ++calls; });
  pool.parallel_for(-5, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPool, FewerItemsThanThreads) {
  ThreadPool pool(4);
  for (int64_t n = 1; n < 4; ++n) check_cover(pool, n);
  // Alternating small and large jobs: idle workers of one job must not run chunks of the next.
  for (int rep = 0; rep < 200; ++rep) {
    check_cover(pool, 1 + rep % 3);
    check_cover(pool, 50 + rep);
  }
}

TEST(ThreadPool, RepeatedCallsAreCheapAndCorrect) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  const auto t0 = std::chrono::steady_clock::now();
  constexpr int kCalls = 2000;
  for (int rep = 0; rep < kCalls; ++rep)
    pool.parallel_for(64, [&](int64_t b, int64_t e) { sum.fetch_add(e - b); });
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(sum.load(), int64_t{64} * kCalls);
  std::cout << "[          ] parallel_for round trip, 2 threads: " << us / kCalls << " us\n";
}

TEST(ThreadPool, WorkRunsOnSeveralThreads) {
  // Each chunk holds its thread until three distinct threads have entered one (or 10 s pass), so
  // the caller cannot take every chunk alone: the workers must claim the other two.
  ThreadPool pool(3);
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::thread::id> ids;
  pool.parallel_for(3, [&](int64_t, int64_t) {
    std::unique_lock<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return ids.size() == 3; });
  });
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_TRUE(ids.count(std::this_thread::get_id())) << "the caller claims chunks too";
}

TEST(ThreadPool, MoreChunksThanThreadsUnderContention) {
  // Busy threads (twice the hardware threads) compete for the cores while pools of 2-4 threads
  // run many jobs of many chunks, alternating sizes: every index must be covered exactly once in
  // the documented chunks whichever thread claims them, and no job may leak into the next.
  std::atomic<bool> stop{false};
  std::vector<std::thread> busy;
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < 2 * hw; ++i)
    busy.emplace_back([&] {
      volatile uint64_t x = 0;
      while (!stop.load(std::memory_order_relaxed)) x = x + 1;
    });
  for (int threads : {2, 3, 4}) {
    ThreadPool pool(threads, std::chrono::microseconds(threads == 3 ? 0 : 100));
    for (int rep = 0; rep < 150; ++rep) {
      check_cover(pool, 1000 + rep, 1 + rep % 97);
      check_cover(pool, 7 + rep % 5, 64);                   // k = n: one index per chunk
      check_cover(pool, 500, ThreadPool::kMaxChunks + 10);  // capped at kMaxChunks (> n here)
    }
  }
  stop = true;
  for (auto& t : busy) t.join();
}

TEST(ThreadPool, StalledThreadLeavesItsShareToTheOthers) {
  // The first chunk a worker runs sleeps 1 s (a worker descheduled mid-job); the caller's first
  // chunk waits (up to 10 s) until that has begun, so the worker surely takes part. With dynamic
  // claiming the caller then takes every other chunk, so the stalled worker runs exactly one; a
  // static half-and-half split would give it 50.
  ThreadPool pool(2);
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> by_worker{0}, by_caller{0};
  std::atomic<bool> stalled{false};
  pool.parallel_for(
      100,
      [&](int64_t, int64_t) {
        if (std::this_thread::get_id() == caller) {
          const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (!stalled.load() && std::chrono::steady_clock::now() < give_up)
            std::this_thread::sleep_for(std::chrono::microseconds(100));
          by_caller.fetch_add(1);
          return;
        }
        by_worker.fetch_add(1);
        if (!stalled.exchange(true)) std::this_thread::sleep_for(std::chrono::seconds(1));
      },
      100);
  EXPECT_EQ(by_caller.load() + by_worker.load(), 100);
  ASSERT_TRUE(stalled.load()) << "the worker never took a chunk in 10 s";
  EXPECT_EQ(by_worker.load(), 1)
      << "the caller should have claimed every chunk but the stalled one";
}

TEST(ThreadPool, ManyPoolsCreateAndDestroy) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(1 + i % 4);
    if (i % 2) check_cover(pool, 10);
  }
}

}  // namespace
}  // namespace fusecheck::cpu
