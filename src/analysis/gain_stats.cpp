#include "analysis/gain_stats.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>

namespace fusecheck {

namespace {

// Below this many values std::sort wins: the radix sort's count tables cost more than sorting a
// q/k norm of 64-128 channels.
constexpr size_t kRadixSortMin = 256;

// Sorts the bit patterns of non-negative finite floats (which order like the values) with an LSD
// radix sort: one counting pass and one scatter per byte that is not the same in every value
// (`varying` = OR ^ AND of the values). Gains read from bf16 or f16 have two zero low bytes and
// norms near 1 share their top byte, so a norm sorts in one or two passes (std::sort's
// mispredicted compares were most of the check's compute on 4096-channel norms). `scratch` holds
// n values; returns whichever of the two buffers holds the sorted values. Any sort gives the same
// order, so the statistics do not depend on which one ran.
const uint32_t* radix_sort_bits(uint32_t* v, uint32_t* scratch, size_t n, uint32_t varying) {
  if (n < kRadixSortMin) {
    std::sort(v, v + n);
    return v;
  }
  for (unsigned shift = 0; shift < 32; shift += 8) {
    if (((varying >> shift) & 255u) == 0) continue;  // every value has this byte: order unchanged
    uint32_t count[256] = {};
    for (size_t i = 0; i < n; ++i) ++count[(v[i] >> shift) & 255u];
    uint32_t sum = 0;
    for (uint32_t& c : count) sum += std::exchange(c, sum);  // exclusive prefix sums
    for (size_t i = 0; i < n; ++i) scratch[count[(v[i] >> shift) & 255u]++] = v[i];
    std::swap(v, scratch);
  }
  return v;
}

float as_float(uint32_t bits) {
  return std::bit_cast<float>(bits);
}

// Percentiles (linear interpolation between order statistics, numpy's default method), mean and
// population variance of the sorted magnitudes. The sums run in sorted order: the figures are
// the same to the last bit whatever order the gains came in.
void sorted_moments(const uint32_t* sorted, size_t n, GainStats& s) {
  auto pct = [&](double q) {
    const double pos = q * double(n - 1);
    const size_t lo = size_t(std::floor(pos));
    const size_t hi = std::min(lo + 1, n - 1);
    const double a = as_float(sorted[lo]), b = as_float(sorted[hi]);
    return a + (b - a) * (pos - double(lo));
  };
  s.p01 = pct(0.01);
  s.p05 = pct(0.05);
  s.p25 = pct(0.25);
  s.median_abs = pct(0.5);
  s.p75 = pct(0.75);
  s.p95 = pct(0.95);
  s.p99 = pct(0.99);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += as_float(sorted[i]);
  s.mean_abs = sum / double(n);
  double ss = 0;
  for (size_t i = 0; i < n; ++i) {
    const double a = as_float(sorted[i]);
    ss += (a - s.mean_abs) * (a - s.mean_abs);
  }
  s.variance = ss / double(n);
}

// Order key of a float's bit pattern: unsigned compare of keys = compare of the values, except
// that -0.0 orders below 0.0.
uint32_t signed_key(uint32_t bits) {
  return bits ^ ((bits >> 31) ? 0xffffffffu : 0x80000000u);
}

// Every gain finite (the common case): branch-free loops the compiler vectorises. Fills the
// counts, max_abs, argmax and min of `s` and the bit patterns of |g| in `mags`; returns
// OR ^ AND of those patterns.
uint32_t classify_finite(std::span<const float> gains, uint32_t* mags, GainStats& s) {
  const size_t n = gains.size();
  uint32_t all_or = 0, all_and = ~0u, max_bits = 0, min_key = ~0u;
  int64_t negative = 0, subnormal = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = std::bit_cast<uint32_t>(gains[i]);
    const uint32_t abs_bits = bits & 0x7fffffffu;
    mags[i] = abs_bits;
    all_or |= abs_bits;
    all_and &= abs_bits;
    max_bits = std::max(max_bits, abs_bits);
    min_key = std::min(min_key, signed_key(bits));
    negative += (bits >> 31) & (abs_bits != 0);  // -0.0 counts as zero, not negative
    subnormal += (abs_bits - 1u) < 0x007fffffu;  // 0 < |g| < 2^-126
  }
  s.n_negative = negative;
  s.n_subnormal = subnormal;
  s.max_abs = as_float(max_bits);
  // The first channel of the largest |g|.
  size_t at = 0;
  while (mags[at] != max_bits) ++at;
  s.argmax = int64_t(at);
  // Equal values have equal bits except 0.0 and -0.0: when the smallest gain is a zero, it is
  // the first zero, as a scan keeping the first of equal values finds.
  uint32_t min_bits = min_key ^ ((min_key >> 31) ? 0x80000000u : 0xffffffffu);
  if ((min_bits & 0x7fffffffu) == 0) {
    size_t z = 0;
    while (mags[z] != 0) ++z;
    min_bits = std::bit_cast<uint32_t>(gains[z]);
  }
  s.min = as_float(min_bits);
  return all_or ^ all_and;
}

// Some gains are inf or NaN: counted and left out of `mags`. Returns how many are kept and
// OR ^ AND of their patterns in `varying`.
size_t classify_any(std::span<const float> gains, uint32_t* mags, GainStats& s, uint32_t& varying) {
  size_t n = 0;
  uint32_t all_or = 0, all_and = ~0u, max_bits = 0;
  float min = std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < gains.size(); ++i) {
    const uint32_t bits = std::bit_cast<uint32_t>(gains[i]);
    const uint32_t abs_bits = bits & 0x7fffffffu;
    if (abs_bits >= 0x7f800000u) {  // exponent all ones: inf or NaN
      ++(abs_bits == 0x7f800000u ? s.n_inf : s.n_nan);
      continue;
    }
    s.n_negative += (bits >> 31) & (abs_bits != 0);
    s.n_subnormal += (abs_bits - 1u) < 0x007fffffu;
    if (abs_bits > max_bits || s.argmax < 0) {  // the first channel of the largest |g|
      max_bits = abs_bits;
      s.argmax = int64_t(i);
    }
    if (gains[i] < min) min = gains[i];  // the first of equal values (0.0 vs -0.0 as seen)
    all_or |= abs_bits;
    all_and &= abs_bits;
    mags[n++] = abs_bits;
  }
  s.max_abs = as_float(max_bits);
  if (n > 0) s.min = min;  // else 0
  varying = all_or ^ all_and;
  return n;
}

}  // namespace

GainStats compute_gain_stats(std::span<const float> gains, double extreme_threshold) {
  GainStats s;
  s.n = int64_t(gains.size());
  if (gains.empty()) return s;
  // |g| of the finite gains as bit patterns, then the sort's scratch: one allocation, not
  // zero-filled (every slot read is written first).
  std::unique_ptr<uint32_t[]> buf(new uint32_t[2 * gains.size()]);
  uint32_t* mags = buf.get();
  uint32_t max_any = 0;  // largest |g| pattern; inf and NaN patterns are above every finite one
  for (float g : gains) max_any = std::max(max_any, std::bit_cast<uint32_t>(g) & 0x7fffffffu);
  uint32_t varying = 0;
  size_t n = gains.size();
  if (max_any < 0x7f800000u)
    varying = classify_finite(gains, mags, s);
  else
    n = classify_any(gains, mags, s, varying);
  if (n == 0) return s;
  const uint32_t* sorted = radix_sort_bits(mags, mags + gains.size(), n, varying);
  // |g| > threshold (compared in double, as the threshold is): the sorted tail.
  const uint32_t* first_above = std::partition_point(
      sorted, sorted + n, [&](uint32_t b) { return !(double(as_float(b)) > extreme_threshold); });
  s.count_above_extreme = int64_t(sorted + n - first_above);
  sorted_moments(sorted, n, s);
  const double inf = std::numeric_limits<double>::infinity();
  s.ratio = s.median_abs > 0 ? s.max_abs / s.median_abs : inf;
  s.cv = s.median_abs > 0 ? std::sqrt(s.variance) / s.median_abs : inf;
  return s;
}

}  // namespace fusecheck
