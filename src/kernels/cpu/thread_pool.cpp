#include "kernels/cpu/thread_pool.h"

#include <algorithm>
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
  for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
}

uint32_t ThreadPool::claim_and_run() {
  uint64_t w = claim_.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t count = (w >> 16) & 0xFFFF, next = w & 0xFFFF;
    if (next >= count) return static_cast<uint32_t>(w >> 32);
    if (!claim_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      continue;  // w now holds the current word: retry on it (possibly a newer job)
    // Chunk `next` of this job is ours: its fields stay valid until we bump done_, and not a
    // moment longer (the caller may then publish the next job), so the count after the bump is
    // the claim word's, not chunks_.
    const int64_t c = static_cast<int64_t>(next), k = static_cast<int64_t>(count);
    (*fn_)(n_ * c / k, n_ * (c + 1) / k);
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == k) done_.notify_one();
    w = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker_loop() {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = spin_while_equal(generation_, seen, spin_);
    while (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      g = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load(std::memory_order_relaxed)) return;
    // The claim word may already be a newer job than g; claim_and_run serves whichever is
    // current and says which generation it left exhausted.
    seen = claim_and_run();
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                              int64_t chunks) {
  if (n <= 0) return;
  const int64_t want = chunks > 0 ? chunks : threads_;
  const int64_t k = std::min({n, want, kMaxChunks});
  if (k <= 1 || threads_ <= 1) {  // nothing to share: skip the wake-up entirely
    if (k <= 1) {
      fn(0, n);
    } else {
      for (int64_t c = 0; c < k; ++c) fn(n * c / k, n * (c + 1) / k);
    }
    return;
  }
  fn_ = &fn;
  n_ = n;
  chunks_ = static_cast<int>(k);
  done_.store(0, std::memory_order_relaxed);
  const uint32_t gen = static_cast<uint32_t>(claim_.load(std::memory_order_relaxed) >> 32) + 1;
  // Publishes fn_, n_, chunks_ and done_ to every thread that claims a chunk of this job.
  claim_.store((uint64_t{gen} << 32) | (static_cast<uint64_t>(k) << 16), std::memory_order_release);
  generation_.store(gen, std::memory_order_release);
  generation_.notify_all();
  claim_and_run();
  // Every chunk is claimed; wait only for those still running on a worker.
  int d = done_.load(std::memory_order_acquire);
  while (d != chunks_) {
    d = spin_while_equal(done_, d, spin_);
    if (d == chunks_) break;
    done_.wait(d, std::memory_order_acquire);
    d = done_.load(std::memory_order_acquire);
  }
  fn_ = nullptr;
}

}  // namespace fusecheck::cpu
