// The checker end to end: real reference checkpoints (no false positives), the Qwen3-0.6B
// statistics fixture (INCOMPATIBLE, naming layers 0 and 1), thresholds on both sides, sharded and
// sparse fixtures, the cache under corruption and read-only directories, and the CLI's outputs.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "analysis/gain_stats.h"
#include "check/cache.h"
#include "check/check.h"
#include "check/result_json.h"
#include "fixture/fixture.h"
#include "io/checkpoint.h"
#include "report/report.h"
#include "testing.h"
#include "util/half.h"

namespace fusecheck {
namespace {

using testing::run_cli;
using testing::TempDir;

CheckOptions no_cache() {
  CheckOptions o;
  o.use_cache = false;
  return o;
}

std::string make_fixture(const TempDir& t, const std::string& name, FixtureOptions fo) {
  fo.tiny = true;
  std::string dir = t / name;
  auto r = write_fixture(dir, fo);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return dir;
}

// Independent oracle: statistics worked out by hand.
TEST(GainStats, HandComputedValues) {
  std::vector<float> g = {1, 2, 3, 4, 100};
  GainStats s = compute_gain_stats(g, 10);
  EXPECT_EQ(s.max_abs, 100);
  EXPECT_EQ(s.median_abs, 3);
  EXPECT_DOUBLE_EQ(s.ratio, 100.0 / 3.0);
  EXPECT_EQ(s.count_above_extreme, 1);
  EXPECT_DOUBLE_EQ(s.mean_abs, 22);
  EXPECT_DOUBLE_EQ(s.variance, (21 * 21 + 20 * 20 + 19 * 19 + 18 * 18 + 78 * 78) / 5.0);
  EXPECT_DOUBLE_EQ(s.p25, 2);             // numpy.percentile([1,2,3,4,100], 25)
  EXPECT_DOUBLE_EQ(s.p95, 4 + 0.8 * 96);  // position 3.8
  EXPECT_EQ(s.argmax, 4);
}

TEST(GainStats, NonFiniteAndNegativeAreCountedNotFatal) {
  std::vector<float> g = {1, -2, NAN, INFINITY, 0};
  GainStats s = compute_gain_stats(g, 10);
  EXPECT_EQ(s.n_nan, 1);
  EXPECT_EQ(s.n_inf, 1);
  EXPECT_EQ(s.n_negative, 1);
  EXPECT_EQ(s.max_abs, 2);
  std::vector<float> zeros = {0, 0, 0, 5};
  EXPECT_TRUE(std::isinf(compute_gain_stats(zeros, 10).ratio));
}

// The large-norm path (radix sort, bit-pattern classification) against an oracle that sorts with
// std::sort and applies numpy's linear-interpolation percentile formula.
TEST(GainStats, LargeNormsMatchASortedOracle) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(1.0f, 0.3f);
  for (size_t n : {255u, 256u, 1000u, 4096u, 5003u}) {
    for (int variant = 0; variant < 3; ++variant) {
      std::vector<float> g(n);
      for (auto& x : g) {
        x = normal(rng);
        if (variant == 1) x = bf16_to_f32(f32_to_bf16(x));          // two zero low bytes
        if (variant == 2) x = std::ldexp(x, int(rng() % 60) - 30);  // every exponent byte varies
      }
      g[n / 3] = 96.5f;
      g[n / 2] = -0.0f;
      g[n / 4] = 1e-40f;  // subnormal
      const GainStats s = compute_gain_stats(g, 10);
      std::vector<double> m;
      for (float x : g) m.push_back(std::fabs(double(x)));
      std::sort(m.begin(), m.end());
      auto pct = [&](double q) {
        const double pos = q * double(n - 1);
        const size_t lo = size_t(pos), hi = std::min(lo + 1, n - 1);
        return m[lo] + (m[hi] - m[lo]) * (pos - double(lo));
      };
      SCOPED_TRACE(::testing::Message() << "n=" << n << " variant=" << variant);
      EXPECT_EQ(s.p01, pct(0.01));
      EXPECT_EQ(s.p25, pct(0.25));
      EXPECT_EQ(s.median_abs, pct(0.5));
      EXPECT_EQ(s.p99, pct(0.99));
      EXPECT_EQ(s.max_abs, m.back());
      EXPECT_EQ(s.argmax, std::max_element(g.begin(), g.end(), [](float a, float b) {
                            return std::fabs(a) < std::fabs(b);
                          }) - g.begin());
      EXPECT_EQ(s.n_subnormal, 1);
      EXPECT_EQ(s.n_negative,
                int64_t(std::count_if(g.begin(), g.end(), [](float x) { return x < 0; })));
      EXPECT_EQ(s.min, double(*std::min_element(g.begin(), g.end())));
    }
  }
}

// The sorted oracle's figures: |g| in increasing order, their sum left to right over n, and the
// squared deviations from that mean summed the same way.
struct SortedOracle {
  std::vector<double> magnitudes;
  double mean = 0, sum_sq = 0;
};
SortedOracle sorted_oracle(const std::vector<float>& g) {
  SortedOracle o;
  for (float x : g) o.magnitudes.push_back(std::fabs(double(x)));
  std::sort(o.magnitudes.begin(), o.magnitudes.end());
  double sum = 0;
  for (double x : o.magnitudes) sum += x;
  o.mean = sum / double(g.size());
  for (double x : o.magnitudes) o.sum_sq += (x - o.mean) * (x - o.mean);
  return o;
}

// The mean and variance are summed in sorted order, ties and signed zeros resolve to the first
// channel, and the path for all-finite gains (branch-free loops) gives what the path that skips
// inf/NaN gives for the same finite values. Oracle: std::sort and in-order sums in double.
TEST(GainStats, SortedSumsFirstOfTiesAndBothPathsAgree) {
  std::mt19937 rng(11);
  std::lognormal_distribution<float> wide(0.0f, 2.0f);
  for (size_t n : {100u, 300u, 4096u}) {
    for (int zero_first = 0; zero_first < 2; ++zero_first) {
      std::vector<float> g(n);
      for (auto& x : g) x = bf16_to_f32(f32_to_bf16(wide(rng)));
      const float peak = 1e6f;
      g[n / 5] = peak;
      g[n / 2] = peak;  // a tie: the first channel counts
      g[n / 3] = zero_first ? 0.0f : -0.0f;
      g[n / 3 + 1] = zero_first ? -0.0f : 0.0f;  // the smallest value, both zeros: the first one
      const SortedOracle o = sorted_oracle(g);
      const std::vector<double>& m = o.magnitudes;
      const double mean = o.mean, ss = o.sum_sq;
      SCOPED_TRACE(::testing::Message() << "n=" << n << " zero_first=" << zero_first);
      const GainStats s = compute_gain_stats(g, 10);
      EXPECT_EQ(s.mean_abs, mean);
      EXPECT_EQ(s.variance, ss / double(n));
      EXPECT_EQ(s.argmax, int64_t(n / 5));
      EXPECT_EQ(s.min, 0.0);
      EXPECT_EQ(std::signbit(s.min), !zero_first);
      EXPECT_EQ(s.count_above_extreme,
                std::count_if(m.begin(), m.end(), [](double x) { return x > 10; }));
      std::vector<float> with_nan = g;
      with_nan.insert(with_nan.begin() + 7, NAN);
      with_nan.push_back(-INFINITY);
      const GainStats t = compute_gain_stats(with_nan, 10);
      EXPECT_EQ(t.n_nan, 1);
      EXPECT_EQ(t.n_inf, 1);
      EXPECT_EQ(t.argmax, s.argmax + 1);  // one NaN before it
      for (auto [a, b] : {std::pair{s.mean_abs, t.mean_abs},
                          {s.variance, t.variance},
                          {s.min, t.min},
                          {s.max_abs, t.max_abs},
                          {s.p05, t.p05},
                          {s.median_abs, t.median_abs},
                          {s.p95, t.p95}}) {
        EXPECT_EQ(a, b);
        EXPECT_EQ(std::signbit(a), std::signbit(b));
      }
      EXPECT_EQ(s.n_negative, t.n_negative);
      EXPECT_EQ(s.n_subnormal, t.n_subnormal);
      EXPECT_EQ(s.count_above_extreme, t.count_above_extreme);
    }
  }
}

// Gains read from bf16 or f16 take few distinct values: their statistics come from a count per
// value instead of a sort (gain_stats.cpp, histogram_moments). Every figure must still be the
// sorted oracle's to the last bit, the sum included when it is not exact in double (gains over
// 2^-30..2^30 with 8-bit significands need more than 53 bits: then the values are added one by
// one, as the oracle adds them). Also zeros, ties, q/k-norm sizes and all-equal gains.
TEST(GainStats, CountedValuesMatchTheSortedOracleBitForBit) {
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(1.0f, 0.3f);
  for (size_t n : {1u, 2u, 5u, 128u, 1000u, 4096u}) {
    for (int variant = 0; variant < 5; ++variant) {
      std::vector<float> g(n);
      for (auto& x : g) {
        x = normal(rng);
        if (variant == 0) x = bf16_to_f32(f32_to_bf16(x));
        if (variant == 1) x = f16_to_f32(f32_to_f16(x));
        if (variant == 2) x = bf16_to_f32(f32_to_bf16(std::ldexp(x, int(rng() % 60) - 30)));
        if (variant == 3) x = bf16_to_f32(f32_to_bf16(x)) * (rng() % 7 == 0 ? 0.0f : 1.0f);
        if (variant == 4) x = 2.5f;
      }
      const SortedOracle o = sorted_oracle(g);
      const std::vector<double>& m = o.magnitudes;
      const double mean = o.mean, ss = o.sum_sq;
      auto pct = [&](double q) {
        const double pos = q * double(n - 1);
        const size_t lo = size_t(pos), hi = std::min(lo + 1, n - 1);
        return m[lo] + (m[hi] - m[lo]) * (pos - double(lo));
      };
      SCOPED_TRACE(::testing::Message() << "n=" << n << " variant=" << variant);
      const GainStats s = compute_gain_stats(g, 1.5);
      EXPECT_EQ(s.mean_abs, mean);
      EXPECT_EQ(s.variance, ss / double(n));
      EXPECT_EQ(s.p01, pct(0.01));
      EXPECT_EQ(s.p05, pct(0.05));
      EXPECT_EQ(s.p25, pct(0.25));
      EXPECT_EQ(s.median_abs, pct(0.5));
      EXPECT_EQ(s.p75, pct(0.75));
      EXPECT_EQ(s.p95, pct(0.95));
      EXPECT_EQ(s.p99, pct(0.99));
      EXPECT_EQ(s.max_abs, m.back());
      EXPECT_EQ(s.count_above_extreme,
                std::count_if(m.begin(), m.end(), [](double x) { return x > 1.5; }));
    }
  }
}

// 4096 bf16 gains of 64 distinct values over 2^-28..2^29: the sum in sorted order needs more than
// 53 bits, and here adding count x value per distinct value rounds differently from adding the
// values one by one (checked below, so the case stays meaningful); the statistics must take the
// one-by-one sum, as the sorted oracle does. (mt19937's sequence is fixed by the standard.)
TEST(GainStats, InexactSumOfTiesIsAddedValueByValue) {
  std::mt19937 rng(74);
  std::vector<float> g(4096);
  for (auto& x : g)
    x = bf16_to_f32(
        f32_to_bf16(std::ldexp(1.0f + float(rng() % 8) / 8.0f, int(rng() % 8) * 8 - 28)));
  std::vector<float> m = g;
  std::sort(m.begin(), m.end());
  double sum = 0, per_value = 0;
  for (float x : m) sum += x;
  for (size_t i = 0; i < m.size();) {
    size_t j = i;
    while (j < m.size() && m[j] == m[i]) ++j;
    per_value += double(j - i) * double(m[i]);
    i = j;
  }
  ASSERT_NE(sum, per_value);
  EXPECT_EQ(compute_gain_stats(g, 10).mean_abs, sum / 4096.0);
}

TEST(Score, ComponentAndVerdictBoundaries) {
  Thresholds t;
  EXPECT_EQ(component_score(20.0, 20), 1.0);
  EXPECT_LT(component_score(20.01, 20), 1.0);
  EXPECT_EQ(component_score(40.0, 20), 0.0);
  EXPECT_NEAR(component_score(28.2842712, 20), 0.5, 1e-6);
  EXPECT_EQ(verdict_for_score(0.8, t), Verdict::kCompatible);
  EXPECT_EQ(verdict_for_score(0.7999, t), Verdict::kWarning);
  EXPECT_EQ(verdict_for_score(0.5, t), Verdict::kWarning);
  EXPECT_EQ(verdict_for_score(0.4999, t), Verdict::kIncompatible);
}

TEST(Check, ReferenceCheckpointsAreCompatible) {
  const std::string s = testing::data_dir();
  for (std::string m : {"qwen3-tiny", "llama-tiny", "qwen2-tiny"})
    for (std::string d : {"fp32", "bf16"}) {
      auto r = check_model(s + "/hf/" + m + "/" + d, no_cache());
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_EQ(r->verdict, Verdict::kCompatible) << m << "/" << d;
      EXPECT_TRUE(r->score.issues.empty()) << m << "/" << d;
    }
  auto r = check_model(s + "/stories260K/hf", no_cache());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->verdict, Verdict::kCompatible);
  EXPECT_EQ(r->config.num_layers, 5);
}

TEST(Check, OrdinaryFixturesAreCompatible) {
  TempDir t;
  for (std::string p : {"qwen3-0.6b", "llama-3.2-1b", "qwen3-8b", "qwen3-235b-a22b"}) {
    FixtureOptions fo;
    fo.profile = p;
    auto r = check_model(make_fixture(t, p, fo), no_cache());
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->verdict, Verdict::kCompatible) << p;
  }
}

TEST(Check, ExtremeQwen3StatisticsAreIncompatibleAndNamed) {
  TempDir t;
  FixtureOptions fo;
  fo.profile = "qwen3-0.6b-extreme";
  std::string dir = make_fixture(t, "x", fo);
  auto r = check_model(dir, no_cache());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->verdict, Verdict::kIncompatible);
  ASSERT_GE(r->score.issues.size(), 2u);
  EXPECT_NE(r->score.issues[0].find("Layer 0: k_norm max gain 96.50"), std::string::npos)
      << r->score.issues[0];
  EXPECT_NE(r->score.issues[1].find("Layer 1: k_norm max gain 44.50"), std::string::npos)
      << r->score.issues[1];
  // Lossy key caches are judged worse than bf16 I/O fusion on the same model.
  CheckOptions o = no_cache();
  o.kernels = "fused-int8kv";
  auto int8 = check_model(dir, o);
  ASSERT_TRUE(int8.ok());
  EXPECT_GT(int8->analysis.amplification, 5 * r->analysis.amplification);
  // The reference path moves nothing: compatible by construction.
  o.kernels = "standard";
  auto standard = check_model(dir, o);
  ASSERT_TRUE(standard.ok());
  EXPECT_EQ(standard->verdict, Verdict::kCompatible);

  // The CLI: exit 2, the text report's layout.
  auto cli = run_cli("check " + dir + " --no-cache");
  EXPECT_EQ(cli.exit_code, 2) << cli.err;
  for (const char* s : {"Model: ", "Status: INCOMPATIBLE", "Issues Found:", "Layer 0: k_norm",
                        "Estimated amplification:", "Recommendation:"})
    EXPECT_NE(cli.out.find(s), std::string::npos) << s << "\n" << cli.out;
  EXPECT_EQ(cli.out.find("\033["), std::string::npos) << "colour on a non-TTY";
}

// One planted k_norm outlier, on each side of the thresholds.
TEST(Check, ThresholdsOnBothSides) {
  TempDir t;
  auto check_with_max = [&](double max_gain, const Thresholds& th) {
    FixtureOptions fo;
    fo.profile = "qwen3-0.6b";
    fo.dtype = DType::F32;  // exact planted values
    fo.k_norm_max[3] = max_gain;
    fo.force = true;
    std::string dir = make_fixture(t, "m" + std::to_string(max_gain), fo);
    CheckOptions o = no_cache();
    o.thresholds = th;
    auto r = check_model(dir, o);
    EXPECT_TRUE(r.ok());
    return *r;
  };
  Thresholds th;
  // Extreme-gain threshold 10: 9.9 is not extreme, 10.1 is.
  auto below = check_with_max(9.9, th), above = check_with_max(10.1, th);
  EXPECT_EQ(below.analysis.norms.size(), above.analysis.norms.size());
  auto k3 = [](const CheckResult& r) {
    for (const auto& n : r.analysis.norms)
      if (n.layer == 3 && n.role == "k_norm") return n.stats;
    return GainStats{};
  };
  EXPECT_EQ(k3(below).count_above_extreme, 0);
  EXPECT_EQ(k3(above).count_above_extreme, 1);
  EXPECT_TRUE(below.score.issues.empty());
  ASSERT_EQ(above.score.issues.size(), 1u);
  EXPECT_NE(above.score.issues[0].find("Layer 3"), std::string::npos);
  // Weight-ratio threshold placed on either side of layer 3's measured ratio.
  const double ratio = k3(above).ratio;
  Thresholds lo = th, hi = th;
  lo.max_safe_weight_ratio = ratio * 0.99;
  hi.max_safe_weight_ratio = ratio * 1.01;
  lo.extreme_weight_threshold = hi.extreme_weight_threshold = 1000;
  auto over = check_with_max(10.1, lo), under = check_with_max(10.1, hi);
  EXPECT_LT(over.score.components[0].score, 1.0);
  EXPECT_EQ(under.score.components[0].score, 1.0);
  EXPECT_EQ(over.score.issues.size(), 1u);
  EXPECT_TRUE(under.score.issues.empty());
  // Amplification threshold on either side of the worst layer's value.
  const double amp = above.analysis.amplification;
  Thresholds alo = hi, ahi = hi;
  alo.max_safe_amplification = amp * 0.99;
  ahi.max_safe_amplification = amp * 1.01;
  EXPECT_LT(check_with_max(10.1, alo).score.components[1].score, 1.0);
  EXPECT_EQ(check_with_max(10.1, ahi).score.components[1].score, 1.0);
}

TEST(Check, ShardedAndSparseFixturesCheck) {
  TempDir t;
  FixtureOptions fo;
  fo.profile = "qwen3-0.6b-extreme";
  fo.shard_bytes = 200000;
  std::string sharded = make_fixture(t, "sharded", fo);
  auto a = check_model(sharded, no_cache());
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->verdict, Verdict::kIncompatible);

  FixtureOptions big;
  big.profile = "qwen3-235b-a22b";
  big.sparse = true;
  std::string dir = t / "235b";
  ASSERT_TRUE(write_fixture(dir, big).ok());
  auto b = check_model(dir, no_cache());
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->verdict, Verdict::kCompatible);
  EXPECT_EQ(b->config.num_experts, 128);
  EXPECT_EQ(b->analysis.layers.size(), 94u);
}

// Headers parsed by several threads: the same result as one thread, and with two corrupt shards
// the error names the first in name order, whichever thread saw it.
TEST(Check, ThreadedShardParsingMatchesOneThread) {
  TempDir t;
  FixtureOptions fo;
  fo.profile = "qwen3-0.6b-extreme";
  fo.shard_bytes = 100000;
  const std::string dir = make_fixture(t, "sharded", fo);
  CheckOptions one = no_cache(), many = no_cache();
  many.threads = 4;
  auto a = check_model(dir, one), b = check_model(dir, many);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(result_to_json(*a).dump(), result_to_json(*b).dump());

  // Files the index does not list are parsed early by the threads (the directory's
  // *.safetensors), but their results and errors are dropped: a corrupt one, a directory and a
  // FIFO (which must not block) change nothing.
  testing::write_text(dir + "/zz-stray.safetensors", "not a safetensors file");
  std::filesystem::create_directory(dir + "/aa-dir.safetensors");
  ASSERT_EQ(::mkfifo((dir + "/mm-fifo.safetensors").c_str(), 0600), 0);
  auto c = check_model(dir, many);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(result_to_json(*a).dump(), result_to_json(*c).dump());

  std::vector<std::string> shards;  // the listed shards (model-*-of-*.safetensors)
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".safetensors" && e.path().filename().string().starts_with("model"))
      shards.push_back(e.path().string());
  std::sort(shards.begin(), shards.end());
  ASSERT_GE(shards.size(), 20u);  // enough for several threads (8 shards per thread at least)
  for (size_t i : {shards.size() / 2 + 1, shards.size() / 3}) {  // later shard corrupted first
    std::filesystem::resize_file(shards[i], 4);
    auto r = check_model(dir, many);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find(shards[i] + ": truncated"), std::string::npos)
        << r.error().message;
  }
}

// The Qwen3-235B-A22B-shaped fixture, sparse (118 shards, ~37,000 tensors, little disk).
Result<FixtureSummary> write_sparse_235b(const std::string& dir) {
  FixtureOptions fo;
  fo.profile = "qwen3-235b-a22b";
  fo.sparse = true;
  return write_fixture(dir, fo);
}

// A 235B index (~37,000 entries) is checked in runs on several threads: a wrong entry in a later
// run is found, and with two wrong entries the error names the first in the index's order, as one
// thread does.
TEST(Check, ThreadedIndexCheckNamesTheFirstBadEntry) {
  TempDir t;
  const std::string dir = t / "235b";
  ASSERT_TRUE(write_sparse_235b(dir).ok());
  const std::string index_path = dir + "/model.safetensors.index.json";
  const auto index = nlohmann::json::parse(testing::read_text(index_path));
  const auto& map = index["weight_map"];  // nlohmann writes it back in name order
  ASSERT_GT(map.size(), 30000u);
  std::vector<std::string> names;
  for (const auto& [name, shard] : map.items()) names.push_back(name);
  const std::string early = names[names.size() / 5], late = names[names.size() * 4 / 5];
  // Each moved to a shard that exists but does not hold it.
  auto other_shard = [&](const std::string& name) {
    const std::string own = map[name];
    return own == map[names.front()] ? std::string(map[names.back()])
                                     : std::string(map[names.front()]);
  };
  CheckOptions one = no_cache(), many = no_cache();
  many.threads = 4;
  auto expect_error_names = [&](const nlohmann::json& edited, const std::string& name) {
    testing::write_text(index_path, edited.dump());
    for (const CheckOptions& o : {one, many}) {
      auto r = check_model(dir, o);
      ASSERT_FALSE(r.ok());
      EXPECT_NE(r.error().message.find("index lists tensor \"" + name + "\""), std::string::npos)
          << o.threads << " threads: " << r.error().message;
    }
  };
  nlohmann::json late_only = index;
  late_only["weight_map"][late] = other_shard(late);
  expect_error_names(late_only, late);
  nlohmann::json both = late_only;
  both["weight_map"][early] = other_shard(early);
  expect_error_names(both, early);
}

// A 235B model's norms (~800,000 channels) are read in runs on several threads: with every q_norm
// the wrong size, the error names layer 0's, as one thread does, and a good model gives the same
// result (fingerprint included) whatever the threads.
TEST(Check, ThreadedNormReadsReportTheFirstBadNorm) {
  TempDir t;
  const std::string dir = t / "235b";
  ASSERT_TRUE(write_sparse_235b(dir).ok());
  CheckOptions one = no_cache(), many = no_cache();
  many.threads = 4;
  auto a = check_model(dir, one), b = check_model(dir, many);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(result_to_json(*a).dump(), result_to_json(*b).dump());

  auto cfg = nlohmann::json::parse(testing::read_text(dir + "/config.json"));
  const int64_t head_dim = cfg["head_dim"];
  cfg["head_dim"] = 2 * head_dim;
  testing::write_text(dir + "/config.json", cfg.dump());
  const std::string want = "model.layers.0.self_attn.q_norm.weight\" has shape [" +
                           std::to_string(head_dim) + "], expected [" +
                           std::to_string(2 * head_dim) + "]";
  for (const CheckOptions& o : {one, many}) {
    auto r = check_model(dir, o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find(want), std::string::npos)
        << o.threads << " threads: " << r.error().message;
  }
}

// Norms that lie side by side are read with one pread (a layer's q_norm, k_norm and
// post_attention_layernorm in the fixture's layout). A file cut inside such a range after it was
// opened: the error still names the first norm in report order that cannot be read whole (layer
// 1's post_attention_layernorm, which lies after the cut), not the range's first norm (layer 1's
// q_norm, readable), as reading each norm alone does.
TEST(Check, NormsReadTogetherFailOneByOne) {
  TempDir t;
  FixtureOptions fo;
  fo.profile = "qwen3-0.6b";
  for (int threads : {1, 4}) {
    SCOPED_TRACE(::testing::Message() << threads << " threads");
    const std::string dir = make_fixture(t, "m" + std::to_string(threads), fo);
    auto ck = Checkpoint::open(dir);
    ASSERT_TRUE(ck.ok()) << ck.error().message;
    const TensorRef* k_norm = ck->find("model.layers.1.self_attn.k_norm.weight");
    const TensorRef* q_norm = ck->find("model.layers.1.self_attn.q_norm.weight");
    const TensorRef* post = ck->find("model.layers.1.post_attention_layernorm.weight");
    ASSERT_TRUE(k_norm && q_norm && post);
    ASSERT_EQ(q_norm->info->offset + q_norm->info->nbytes, k_norm->info->offset);
    ASSERT_EQ(k_norm->info->offset + k_norm->info->nbytes, post->info->offset);
    ASSERT_EQ(::truncate((dir + "/model.safetensors").c_str(), off_t(k_norm->info->offset + 3)), 0);
    CheckOptions o = no_cache();
    o.threads = threads;
    auto r = check_checkpoint(*ck, o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("file ended while reading tensor "
                                     "\"model.layers.1.post_attention_layernorm.weight\""),
              std::string::npos)
        << r.error().message;
  }
}

TEST(Check, GemmaProfileRequiresItsExtraNorms) {
  // A Qwen3 checkpoint relabelled gemma3_text lacks Gemma's feed-forward norms.
  TempDir t;
  FixtureOptions fo;
  fo.profile = "qwen3-0.6b";
  fo.dtype = DType::F32;
  std::string dir = make_fixture(t, "g", fo);
  auto qwen = check_model(dir, no_cache());
  ASSERT_TRUE(qwen.ok());
  std::string cfg = testing::read_text(dir + "/config.json");
  auto j = nlohmann::json::parse(cfg);
  j["model_type"] = "gemma3_text";
  testing::write_text(dir + "/config.json", j.dump());
  // Gemma also has pre/post feed-forward norms; this fixture lacks them, which must be an error.
  auto gemma = check_model(dir, no_cache());
  ASSERT_FALSE(gemma.ok());
  EXPECT_NE(gemma.error().message.find("pre_feedforward_layernorm"), std::string::npos)
      << gemma.error().message;
}

TEST(Check, CacheHitsAndSurvivesCorruption) {
  TempDir t;
  FixtureOptions fo;
  fo.profile = "qwen3-0.6b-extreme";
  std::string dir = make_fixture(t, "m", fo);
  CheckOptions o;
  o.cache_dir = t / "cache";
  auto first = check_model(dir, o);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->from_cache);
  EXPECT_TRUE(first->cache_note.empty()) << first->cache_note;
  auto second = check_model(dir, o);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->from_cache);
  EXPECT_EQ(second->verdict, first->verdict);
  EXPECT_EQ(second->score.issues, first->score.issues);
  EXPECT_EQ(result_to_json(*second)["analysis"], result_to_json(*first)["analysis"]);

  // Corrupt every entry in three ways: garbage, truncation, a flipped verdict with a stale
  // checksum.
  auto entries = [&] {
    std::vector<std::string> v;
    for (auto& e : std::filesystem::directory_iterator(o.cache_dir)) v.push_back(e.path());
    return v;
  };
  ASSERT_EQ(entries().size(), 1u);
  const std::string entry = entries()[0];
  const std::string good = testing::read_text(entry);
  std::string flipped = good;
  auto pos = flipped.find("\"INCOMPATIBLE\"");
  ASSERT_NE(pos, std::string::npos);
  flipped.replace(pos, 14, "\"COMPATIBLE\"  ");
  for (const std::string& bad :
       {std::string("garbage"), good.substr(0, good.size() / 2), flipped}) {
    testing::write_text(entry, bad);
    auto r = check_model(dir, o);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->from_cache);
    EXPECT_EQ(r->verdict, Verdict::kIncompatible);
    EXPECT_EQ(testing::read_text(entry), good) << "corrupt entry was not rewritten";
  }
  // A different kernel profile is a different key.
  CheckOptions k = o;
  k.kernels = "fused-int8kv";
  auto other = check_model(dir, k);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->from_cache);
  EXPECT_EQ(entries().size(), 2u);
}

TEST(Check, ReadOnlyCacheStillGivesVerdict) {
  if (geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  TempDir t;
  FixtureOptions fo;
  fo.profile = "qwen3-0.6b";
  std::string dir = make_fixture(t, "m", fo);
  std::string cache = t / "ro";
  ASSERT_EQ(mkdir(cache.c_str(), 0555), 0);
  CheckOptions o;
  o.cache_dir = cache;
  auto r = check_model(dir, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->verdict, Verdict::kCompatible);
  EXPECT_FALSE(r->cache_note.empty());
}

TEST(Check, CacheDirThatIsAFileGivesNoteNotFailure) {
  TempDir t;
  FixtureOptions fo;
  fo.profile = "qwen3-0.6b";
  std::string dir = make_fixture(t, "m", fo);
  testing::write_text(t / "file", "x");
  auto cli = run_cli("check " + dir + " --cache-dir " + (t / "file"));
  EXPECT_EQ(cli.exit_code, 0);
  EXPECT_NE(cli.err.find("note: result not cached"), std::string::npos) << cli.err;
}

TEST(Check, ForceStatusOverride) {
  TempDir t;
  FixtureOptions fo;
  fo.profile = "qwen3-0.6b";
  std::string dir = make_fixture(t, "m", fo);
  auto env = run_cli("check " + dir + " --no-cache", "FUSECHECK_FORCE_STATUS=INCOMPATIBLE");
  EXPECT_EQ(env.exit_code, 2);
  EXPECT_NE(env.out.find("forced by override; the check found COMPATIBLE"), std::string::npos);
  auto flag = run_cli("check " + dir + " --no-cache --force-status WARNING");
  EXPECT_EQ(flag.exit_code, 1);
  EXPECT_EQ(run_cli("check " + dir + " --no-cache", "FUSECHECK_FORCE_STATUS=bogus").exit_code, 3);
}

TEST(Check, ReportFormatsAndAtomicReportFile) {
  TempDir t;
  FixtureOptions fo;
  fo.profile = "qwen3-0.6b-extreme";
  std::string dir = make_fixture(t, "m", fo);
  auto js = run_cli("check " + dir + " --no-cache --format json --report " + (t / "r.md"));
  EXPECT_EQ(js.exit_code, 2);
  auto j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j["schema"], "fusecheck.check/1");
  EXPECT_EQ(j["verdict"], "INCOMPATIBLE");
  EXPECT_EQ(j["analysis"]["norms"].size(), 28u * 4 + 1);
  auto back = result_from_json(j);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->score.issues.size(), j["score"]["issues"].size());
  std::string md = testing::read_text(t / "r.md");
  EXPECT_NE(md.find("## Fused-kernel compatibility"), std::string::npos);
  EXPECT_NE(md.find("| layer | norm |"), std::string::npos);
  auto card = run_cli("check " + dir + " --no-cache --format model-card");
  EXPECT_EQ(card.out.rfind("---\ntags:\n- fused-kernels-incompatible\nfusecheck:\n  status: "
                           "INCOMPATIBLE\n",
                           0),
            0u)
      << card.out;
  auto verbose = run_cli("check " + dir + " --no-cache -v");
  EXPECT_NE(verbose.out.find("Per-layer metrics:"), std::string::npos);
  EXPECT_NE(verbose.out.find("Layer-wise distribution"), std::string::npos);
  // No temporary files are left beside the report.
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator(t.path())) n += e.path().filename() != "m";
  EXPECT_EQ(n, 1u);
}

TEST(Check, RopeParametersAndHubFormBothLoad) {
  // transformers 5 form (tests/data/hf checkpoints) and the Hub's older form (fixtures) parse the
  // same way.
  auto r = check_model(testing::data_dir() + "/hf/qwen3-tiny/fp32", no_cache());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->config.rope.theta, 1000000.0);
  TempDir t;
  FixtureOptions fo;
  fo.profile = "llama-3.2-1b";
  auto l = check_model(make_fixture(t, "l", fo), no_cache());
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->config.rope.type, "llama3");
  EXPECT_EQ(l->config.rope.factor, 32.0);
  EXPECT_EQ(l->config.rope.theta, 500000.0);
}

}  // namespace
}  // namespace fusecheck
