#include "analysis/gain_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace fusecheck {

namespace {
// Linear-interpolated percentile of sorted data (numpy's default method).
double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  double pos = q * double(sorted.size() - 1);
  size_t lo = size_t(std::floor(pos));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  double frac = pos - double(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}
}  // namespace

GainStats compute_gain_stats(std::span<const float> gains, double extreme_threshold) {
  GainStats s;
  s.n = int64_t(gains.size());
  std::vector<double> mags;
  mags.reserve(gains.size());
  s.min = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < gains.size(); ++i) {
    double g = gains[i];
    if (std::isnan(g)) { ++s.n_nan; continue; }
    if (std::isinf(g)) { ++s.n_inf; continue; }
    if (g < 0) ++s.n_negative;
    if (g != 0 && std::fpclassify(gains[i]) == FP_SUBNORMAL) ++s.n_subnormal;
    double a = std::fabs(g);
    if (a > extreme_threshold) ++s.count_above_extreme;
    if (a > s.max_abs || s.argmax < 0) {
      s.max_abs = a;
      s.argmax = int64_t(i);
    }
    s.min = std::min(s.min, g);
    mags.push_back(a);
  }
  if (mags.empty()) {
    s.min = 0;
    return s;
  }
  std::sort(mags.begin(), mags.end());
  s.median_abs = percentile(mags, 0.5);
  s.p01 = percentile(mags, 0.01);
  s.p05 = percentile(mags, 0.05);
  s.p25 = percentile(mags, 0.25);
  s.p75 = percentile(mags, 0.75);
  s.p95 = percentile(mags, 0.95);
  s.p99 = percentile(mags, 0.99);
  double sum = 0;
  for (double a : mags) sum += a;
  s.mean_abs = sum / double(mags.size());
  double ss = 0;
  for (double a : mags) ss += (a - s.mean_abs) * (a - s.mean_abs);
  s.variance = ss / double(mags.size());
  const double inf = std::numeric_limits<double>::infinity();
  s.ratio = s.median_abs > 0 ? s.max_abs / s.median_abs : inf;
  s.cv = s.median_abs > 0 ? std::sqrt(s.variance) / s.median_abs : inf;
  return s;
}

}  // namespace fusecheck
