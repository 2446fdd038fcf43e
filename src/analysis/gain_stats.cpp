#include "analysis/gain_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

namespace fusecheck {

namespace {

// Below this many values std::sort wins: the radix sort's histogram pass and count tables cost
// more than sorting a q/k norm of 64-128 channels.
constexpr size_t kRadixSortMin = 256;

// Sorts non-negative finite floats by their bit patterns (which order like the values) with an
// LSD radix sort over the 4 bytes. One pass builds all four histograms; a byte that is the same in
// every value is skipped. Gains read from bf16 or f16 have two zero low bytes, and norms near 1
// share their top byte, so a typical norm sorts in one or two scatter passes (std::sort's
// mispredicted compares were most of the check's compute on 4096-channel norms). Any sort gives
// the same order, so the statistics do not depend on which one ran.
void radix_sort_nonnegative(std::vector<float>& v) {
  const size_t n = v.size();
  if (n < kRadixSortMin) {
    std::sort(v.begin(), v.end());
    return;
  }
  std::vector<uint32_t> a(n), b(n);
  std::memcpy(a.data(), v.data(), 4 * n);
  uint32_t count[4][256] = {};
  for (uint32_t x : a) {
    ++count[0][x & 255u];
    ++count[1][(x >> 8) & 255u];
    ++count[2][(x >> 16) & 255u];
    ++count[3][x >> 24];
  }
  for (int byte = 0; byte < 4; ++byte) {
    uint32_t* c = count[byte];
    const unsigned shift = 8u * unsigned(byte);
    if (c[(a[0] >> shift) & 255u] == n) continue;  // every value has this byte: order unchanged
    uint32_t sum = 0;
    for (int d = 0; d < 256; ++d) sum += std::exchange(c[d], sum);  // exclusive prefix sums
    for (uint32_t x : a) b[c[(x >> shift) & 255u]++] = x;
    a.swap(b);
  }
  std::memcpy(v.data(), a.data(), 4 * n);
}

}  // namespace

GainStats compute_gain_stats(std::span<const float> gains, double extreme_threshold) {
  GainStats s;
  s.n = int64_t(gains.size());
  std::vector<float> mags;  // float: exact for |g|, and half the memory traffic of double
  mags.reserve(gains.size());
  // Classified by bit pattern: one pass, no libm calls (-0.0 counts as zero, not negative).
  double min = std::numeric_limits<double>::infinity();
  float max_abs = 0;
  for (size_t i = 0; i < gains.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &gains[i], 4);
    const uint32_t abs_bits = bits & 0x7fffffffu;
    if (abs_bits >= 0x7f800000u) {  // exponent all ones: inf or NaN
      ++(abs_bits == 0x7f800000u ? s.n_inf : s.n_nan);
      continue;
    }
    s.n_negative += (bits >> 31) & (abs_bits != 0);
    s.n_subnormal += abs_bits != 0 && abs_bits < 0x00800000u;
    float a;
    std::memcpy(&a, &abs_bits, 4);
    s.count_above_extreme += double(a) > extreme_threshold;
    if (a > max_abs || s.argmax < 0) {
      max_abs = a;
      s.argmax = int64_t(i);
    }
    min = std::min(min, double(gains[i]));
    mags.push_back(a);
  }
  s.min = min;
  s.max_abs = max_abs;
  if (mags.empty()) {
    s.min = 0;
    return s;
  }
  // Percentiles with linear interpolation between order statistics (numpy's default method).
  radix_sort_nonnegative(mags);
  const size_t n = mags.size();
  constexpr double kQ[] = {0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99};
  auto pct = [&](double q) {
    const double pos = q * double(n - 1);
    const size_t lo = size_t(std::floor(pos));
    const size_t hi = std::min(lo + 1, n - 1);
    return double(mags[lo]) + (double(mags[hi]) - double(mags[lo])) * (pos - double(lo));
  };
  s.p01 = pct(kQ[0]);
  s.p05 = pct(kQ[1]);
  s.p25 = pct(kQ[2]);
  s.median_abs = pct(kQ[3]);
  s.p75 = pct(kQ[4]);
  s.p95 = pct(kQ[5]);
  s.p99 = pct(kQ[6]);
  double sum = 0;
  for (float a : mags) sum += a;
  s.mean_abs = sum / double(mags.size());
  double ss = 0;
  for (float a : mags) ss += (a - s.mean_abs) * (a - s.mean_abs);
  s.variance = ss / double(mags.size());
  const double inf = std::numeric_limits<double>::infinity();
  s.ratio = s.median_abs > 0 ? s.max_abs / s.median_abs : inf;
  s.cv = s.median_abs > 0 ? std::sqrt(s.variance) / s.median_abs : inf;
  return s;
}

}  // namespace fusecheck
