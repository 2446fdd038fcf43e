// Summary statistics of one norm tensor's effective gains (after the architecture's convention,
// e.g. Gemma's 1 + w). Magnitudes |g| are used throughout: a gain's sign flips a channel but does
// not change how much rounding error it amplifies. Non-finite and negative gains are counted, not
// fatal.
#pragma once

#include <cstdint>
#include <span>

namespace fusecheck {

struct GainStats {
  int64_t n = 0;
  double max_abs = 0;     // max |g| over finite gains
  double median_abs = 0;  // median |g|
  double ratio = 0;       // max_abs / median_abs; +inf when the median is 0
  double mean_abs = 0;
  double variance = 0;  // population variance of |g|
  double cv = 0;        // sqrt(variance) / median_abs: spread relative to the typical gain
  double min = 0;       // smallest signed gain
  double p01 = 0, p05 = 0, p25 = 0, p75 = 0, p95 = 0, p99 = 0;  // percentiles of |g|
  int64_t count_above_extreme = 0;                              // |g| > extreme threshold
  int64_t n_nan = 0, n_inf = 0, n_negative = 0, n_subnormal = 0;
  int64_t argmax = -1;  // channel of max |g|
};

GainStats compute_gain_stats(std::span<const float> gains, double extreme_threshold);

}  // namespace fusecheck
