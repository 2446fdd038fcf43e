#include "analysis/gain_stats.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
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
// OR ^ AND of those patterns, and the largest pattern in `max_bits_out`: when that is an inf or
// NaN pattern the gains were not all finite, and the caller discards all this.
uint32_t classify_finite(std::span<const float> gains, uint32_t* mags, GainStats& s,
                         uint32_t& max_bits_out) {
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
  max_bits_out = max_bits;
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

// The percentile ranks sorted_moments reads (lo and hi of each of the seven), and where each
// goes: numpy's linear interpolation between the order statistics at floor(pos) and the next.
constexpr double kQuantiles[7] = {0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99};
void set_percentiles(const uint32_t (&at)[14], size_t n, GainStats& s) {
  double* out[7] = {&s.p01, &s.p05, &s.p25, &s.median_abs, &s.p75, &s.p95, &s.p99};
  for (int j = 0; j < 7; ++j) {
    const double pos = kQuantiles[j] * double(n - 1);
    const double a = as_float(at[2 * j]), b = as_float(at[2 * j + 1]);
    *out[j] = a + (b - a) * (pos - std::floor(pos));
  }
}

// Below this many distinct keys a histogram of the magnitudes replaces the sort (see
// histogram_moments): its table costs two passes over the keys, the sort passes over the values.
// At most 2^20 keys: the tables (20 bytes a key) then stay within ~20 MiB whatever the tensor.
size_t histogram_key_limit(size_t n) {
  return std::min<size_t>(2 * n + 1024, size_t(1) << 20);
}

// The sorted magnitudes as runs: `value[j]` repeated `count[j]` times, j < runs, increasing.
struct Runs {
  const uint32_t* value;
  const uint32_t* count;
  size_t runs, n;  // n: the sum of the counts
};

// The sum of the sorted values, as sorted_moments adds them. Non-negative values that are all
// multiples of 2^low (the lowest bit any of them sets) add up exactly in double while the sum
// stays below 2^(low + 53), whatever the order; so count x value per run gives the same sum
// when it ends below that bound (once a partial sum reaches the bound, rounding keeps every
// later one at or above it, so a sum that rounded cannot end below it). Else value by value.
double sorted_sum(const Runs& r, const uint8_t* run_starts) {
  uint32_t sig_or = 0;
  double fast = 0;
  for (size_t j = 0; j < r.runs; ++j) {
    const uint32_t bits = r.value[j];
    sig_or |= (bits & 0x7fffffu) | (bits >= 0x00800000u ? 0x800000u : 0u);
    fast += double(r.count[j]) * double(as_float(bits));
  }
  const uint32_t first_nonzero = r.value[0] != 0 ? r.value[0] : r.runs > 1 ? r.value[1] : 0;
  if (first_nonzero == 0) return 0;                           // every value is zero
  const int exp_min = std::max(int(first_nonzero >> 23), 1);  // a subnormal's scale is 2^-149
  const int low = exp_min - 150 + std::countr_zero(sig_or);
  if (fast < std::ldexp(1.0, low + 53)) return fast;
  double sum = 0;
  size_t j = 0;
  for (size_t i = 0; i < r.n; ++i) {
    j += run_starts[i];
    sum += as_float(r.value[j]);
  }
  return sum;
}

// sorted_moments over runs. The squared deviations are added one by one in sorted order, as
// sorted_moments adds them, through `run_starts` (1 where a run other than the first begins):
// an index that steps through the runs without a branch (a loop per run mispredicted its exit
// at every run, most of the time of a 1024-channel norm).
void run_moments(const Runs& r, double threshold, uint8_t* run_starts, double* dev, GainStats& s) {
  // The percentile ranks in increasing order (a percentile's hi can pass the next one's lo),
  // each with the slot of `at` it fills, so one cursor fills them.
  std::pair<size_t, int> rank[14];
  for (int q = 0; q < 7; ++q) {
    const size_t lo = size_t(std::floor(kQuantiles[q] * double(r.n - 1)));
    rank[2 * q] = {lo, 2 * q};
    rank[2 * q + 1] = {std::min(lo + 1, r.n - 1), 2 * q + 1};
  }
  std::sort(std::begin(rank), std::end(rank));
  uint32_t at[14] = {};
  int next = 0;
  size_t seen = 0;
  int64_t above = 0;
  std::memset(run_starts, 0, r.n);
  for (size_t j = 0; j < r.runs; ++j) {
    if (j > 0) run_starts[seen] = 1;
    seen += r.count[j];
    for (; next < 14 && rank[next].first < seen; ++next) at[rank[next].second] = r.value[j];
    above += double(as_float(r.value[j])) > threshold ? r.count[j] : 0;
  }
  set_percentiles(at, r.n, s);
  s.count_above_extreme = above;
  s.mean_abs = sorted_sum(r, run_starts) / double(r.n);
  for (size_t j = 0; j < r.runs; ++j) {
    const double a = as_float(r.value[j]);
    dev[j] = (a - s.mean_abs) * (a - s.mean_abs);
  }
  double ss = 0;
  size_t j = 0;
  for (size_t i = 0; i < r.n; ++i) {
    j += run_starts[i];
    ss += dev[j];
  }
  s.variance = ss / double(r.n);
}

// The statistics of the sorted magnitudes without sorting them: gains read from bf16 or f16 take
// few distinct values over a narrow range (a bf16 norm near 1: ~200-400 keys), so a count per
// key, walked in increasing order, is the sorted sequence as runs of equal values. Every figure
// is what sorted_moments gives on the sorted values, to the last bit. Returns false (nothing
// set) when the keys span more than `key_limit`: the caller sorts.
bool histogram_moments(const uint32_t* mags, size_t n, uint32_t varying, double threshold,
                       size_t key_limit, GainStats& s) {
  uint32_t lo = ~0u, hi = 0;
  for (size_t i = 0; i < n; ++i) {
    lo = std::min(lo, mags[i]);
    hi = std::max(hi, mags[i]);
  }
  // Bits below the lowest varying one are the same in every value: the key drops them.
  const int shift = varying ? std::countr_zero(varying) : 0;
  const size_t keys = size_t((hi - lo) >> shift) + 1;
  if (keys > key_limit) return false;
  // One block of raw storage (objects of implicit-lifetime types begin in it as written): the
  // runs' deviations, the count per key, the runs' values and counts, then n bytes.
  std::unique_ptr<std::byte[]> block(
      new std::byte[keys * (sizeof(double) + 3 * sizeof(uint32_t)) + n]);
  auto* dev = reinterpret_cast<double*>(block.get());
  auto* count = reinterpret_cast<uint32_t*>(dev + keys);
  uint32_t* value = count + keys;
  uint32_t* run_count = value + keys;
  auto* run_starts = reinterpret_cast<uint8_t*>(run_count + keys);
  std::memset(count, 0, keys * sizeof(uint32_t));
  for (size_t i = 0; i < n; ++i) ++count[(mags[i] - lo) >> shift];
  size_t runs = 0;
  for (size_t k = 0; k < keys; ++k) {  // compacted without a branch: the count decides the step
    value[runs] = lo + (uint32_t(k) << shift);
    run_count[runs] = count[k];
    runs += count[k] != 0;
  }
  run_moments({value, run_count, runs, n}, threshold, run_starts, dev, s);
  return true;
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
  // The all-finite path first (the common case); its largest |g| pattern says whether it was:
  // inf and NaN patterns are above every finite one. If not, the other path starts over.
  uint32_t max_bits = 0;
  uint32_t varying = classify_finite(gains, mags, s, max_bits);
  size_t n = gains.size();
  if (max_bits >= 0x7f800000u) {
    s = GainStats{};
    s.n = int64_t(gains.size());
    n = classify_any(gains, mags, s, varying);
  }
  if (n == 0) return s;
  if (!histogram_moments(mags, n, varying, extreme_threshold, histogram_key_limit(n), s)) {
    const uint32_t* sorted = radix_sort_bits(mags, mags + gains.size(), n, varying);
    // |g| > threshold (compared in double, as the threshold is): the sorted tail.
    const uint32_t* first_above = std::partition_point(
        sorted, sorted + n, [&](uint32_t b) { return !(double(as_float(b)) > extreme_threshold); });
    s.count_above_extreme = int64_t(sorted + n - first_above);
    sorted_moments(sorted, n, s);
  }
  const double inf = std::numeric_limits<double>::infinity();
  s.ratio = s.median_abs > 0 ? s.max_abs / s.median_abs : inf;
  s.cv = s.median_abs > 0 ? std::sqrt(s.variance) / s.median_abs : inf;
  return s;
}

}  // namespace fusecheck
