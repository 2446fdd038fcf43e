// Contiguous runs of an index range on a few threads, for the check's parallel steps (index
// entries, norm reads): each run is a fixed slice, so whichever error a step reports first is
// the same for every thread count when it scans the runs' results in order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

namespace fusecheck {

// How many runs `work` items need: one per `per_run` items (a thread's start costs more than
// fewer), at most `threads`, at least 1.
inline size_t run_count(int threads, int64_t work, int64_t per_run) {
  const size_t wanted = size_t(std::max<int64_t>(work, 0) / per_run) + 1;
  return std::clamp<size_t>(size_t(std::max(threads, 1)), 1, wanted);
}

// Calls f(run, begin, end) for the `runs` contiguous slices of [0, n): run r covers
// [n r / runs, n (r + 1) / runs). The last run runs on the calling thread, the others on their
// own; returns when all are done.
template <typename F>
void for_each_run(size_t n, size_t runs, F&& f) {
  std::vector<std::jthread> workers;
  for (size_t r = 0; r + 1 < runs; ++r)
    workers.emplace_back([&f, n, runs, r] { f(r, n * r / runs, n * (r + 1) / runs); });
  f(runs - 1, n * (runs - 1) / runs, n);
}  // the workers join here

}  // namespace fusecheck
