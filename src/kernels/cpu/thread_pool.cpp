#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <cassert>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace fusecheck::cpu {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Polls `value` until it differs from `old` or `spin` has passed (the clock is read every 64
// polls); returns the last value read.
template <typename T>
T spin_while_equal(const std::atomic<T>& value, T old, std::chrono::nanoseconds spin) {
  T v = value.load(std::memory_order_acquire);
  if (v != old) return v;
  const auto deadline = std::chrono::steady_clock::now() + spin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      cpu_relax();
      v = value.load(std::memory_order_acquire);
      if (v != old) return v;
    }
    if (std::chrono::steady_clock::now() >= deadline) return v;
  }
}

// Reads a small sysfs file; "" when absent.
std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  if (f) std::getline(f, s);
  return s;
}

}  // namespace

int physical_core_count() {
  // One entry per (package, core) pair; hyperthread siblings share it.
  std::set<std::pair<std::string, std::string>> cores;
  for (int cpu = 0; cpu < 4096; ++cpu) {
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    const std::string core = read_line(dir + "core_id");
    if (core.empty()) break;
    cores.emplace(read_line(dir + "physical_package_id"), core);
  }
  if (!cores.empty()) return static_cast<int>(cores.size());
  const unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

ThreadPool::ThreadPool(int threads, std::chrono::microseconds spin) : spin_(spin) {
  threads_ = threads > 0 ? threads : physical_core_count();
  workers_.reserve(static_cast<size_t>(threads_ - 1));
  for (int i = 1; i < threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_ = true;
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run_chunk(int chunk) {
  const int64_t begin = n_ * chunk / chunks_;
  const int64_t end = n_ * (chunk + 1) / chunks_;
  (*fn_)(begin, end);
}

void ThreadPool::worker_loop(int index) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = spin_while_equal(generation_, seen, spin_);
    while (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_) return;
    // Every worker checks in, even one beyond the chunk count (n < threads): the caller must not
    // publish the next job while any worker may still read this one's fields.
    if (index < chunks_) run_chunk(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                              int64_t max_chunks) {
  if (n <= 0) return;
  const int chunks = static_cast<int>(std::min({n, static_cast<int64_t>(threads_), max_chunks}));
  if (chunks <= 1) {  // nothing to share: skip the wake-up entirely
    fn(0, n);
    return;
  }
  fn_ = &fn;
  n_ = n;
  chunks_ = chunks;
  pending_.store(threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);  // publishes fn_, n_, chunks_, pending_
  generation_.notify_all();
  run_chunk(0);
  int left = pending_.load(std::memory_order_acquire);
  while (left != 0) {
    left = spin_while_equal(pending_, left, spin_);
    if (left == 0) break;
    pending_.wait(left, std::memory_order_acquire);
    left = pending_.load(std::memory_order_acquire);
  }
  fn_ = nullptr;
}

}  // namespace fusecheck::cpu
