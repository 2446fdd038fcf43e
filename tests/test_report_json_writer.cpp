// The JSON report's direct writer (check/result_writer.cpp) against nlohmann's dump(2) of the same
// result, the oracle it replaces: byte for byte on real checkpoints, the fixtures the check is
// timed on, and results edited to hold what JSON makes awkward (non-finite and signed-zero numbers,
// escapes, non-ASCII and non-UTF-8 text, empty lists).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "check/check.h"
#include "check/result_json.h"
#include "fixture/fixture.h"
#include "report/report.h"
#include "testing.h"

namespace fusecheck {
namespace {

CheckOptions no_cache() {
  CheckOptions o;
  o.use_cache = false;
  return o;
}

void ExpectSameAsTree(const CheckResult& r, const std::string& what) {
  const std::string tree = result_to_json(r).dump(2);
  const std::string direct = result_to_json_text(r);
  ASSERT_EQ(direct.size(), tree.size()) << what;
  EXPECT_TRUE(direct == tree) << what;
}

TEST(ReportJsonWriter, MatchesTheTreeOnReferenceCheckpoints) {
  const std::string s = testing::data_dir();
  for (std::string m : {"qwen3-tiny", "llama-tiny", "qwen2-tiny", "qwen3-tiny-extreme"}) {
    auto r = check_model(s + "/hf/" + m + "/bf16", no_cache());
    ASSERT_TRUE(r.ok()) << r.error().message;
    ExpectSameAsTree(*r, m);
  }
}

TEST(ReportJsonWriter, MatchesTheTreeOnTheTimedFixturesAndKernelProfiles) {
  testing::TempDir t;
  for (std::string p : {"qwen3-0.6b", "qwen3-0.6b-extreme", "llama-3.2-1b", "qwen3-235b-a22b"}) {
    FixtureOptions fo;
    fo.profile = p;
    fo.sparse = p == "qwen3-235b-a22b";  // the full-size 235B header, as scripts/bench_check.sh
    fo.tiny = !fo.sparse;
    const std::string dir = t / p;
    ASSERT_TRUE(write_fixture(dir, fo).ok()) << p;
    for (std::string k : {"generic", "fused", "fused-int8kv", "fused-fp16acc"}) {
      CheckOptions o = no_cache();
      o.kernels = k;
      auto r = check_model(dir, o);
      ASSERT_TRUE(r.ok()) << r.error().message;
      ExpectSameAsTree(*r, p + " " + k);
    }
  }
}

TEST(ReportJsonWriter, MatchesTheTreeOnAwkwardValues) {
  auto base = check_model(testing::data_dir() + "/hf/qwen3-tiny-extreme/bf16", no_cache());
  ASSERT_TRUE(base.ok()) << base.error().message;
  CheckResult r = *base;
  const double inf = std::numeric_limits<double>::infinity();
  r.analysis.amplification = inf;
  r.analysis.cumulative_amplification = -inf;
  r.analysis.key_cache_loss = std::numeric_limits<double>::quiet_NaN();
  r.analysis.depth_key_loss = -0.0;
  r.analysis.floor_key_loss = 1e-300;
  r.analysis.rounding_amplification = 1.5e17;
  r.analysis.norms[0].stats.ratio = inf;
  r.analysis.norms[0].stats.min = -5e-324;
  r.analysis.k_proj.bytes_read = std::numeric_limits<uint64_t>::max();
  r.analysis.worst_layer = std::numeric_limits<int64_t>::min();
  r.model_path = "/m/\"q\"\\ \b\f\n\r\t \x01\x1f\x7f caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80";
  r.cache_note = "";
  r.score.issues.clear();
  r.score.findings.clear();
  r.kernels.fusion.clear();
  r.overridden = true;
  r.verdict = Verdict::kWarning;
  ExpectSameAsTree(r, "edited");
  r.analysis.layers.clear();
  r.analysis.norms.clear();
  r.analysis.roles.clear();
  ExpectSameAsTree(r, "empty lists");
  // Not UTF-8: the tree's dump throws, and so does the writer (it hands over to the tree).
  r.model_path = "/m/\xff\xfe";
  EXPECT_THROW(result_to_json(r).dump(2), nlohmann::json::exception);
  EXPECT_THROW(result_to_json_text(r), nlohmann::json::exception);
}

// The writer copies a number it has written before (same bits) instead of formatting it again,
// from a small direct-mapped table: repeated values, +0.0 beside -0.0, and more distinct values
// than the table holds (so slots are overwritten) still give the tree's bytes.
TEST(ReportJsonWriter, RepeatedNumbersAreTheTreesText) {
  auto base = check_model(testing::data_dir() + "/hf/qwen3-tiny-extreme/bf16", no_cache());
  ASSERT_TRUE(base.ok()) << base.error().message;
  CheckResult r = *base;
  ASSERT_FALSE(r.analysis.norms.empty());
  const GainStats stats = r.analysis.norms[0].stats;
  double x = 0.1;
  for (int i = 0; i < 600; ++i) {  // 600 norms x 6 values: ~2,400 distinct, each repeated
    NormReport n = r.analysis.norms[0];
    n.stats = stats;
    n.stats.max_abs = x;
    n.stats.median_abs = i % 2 ? 0.0 : -0.0;
    n.stats.mean_abs = x * 3;
    n.stats.p01 = 1.0 / (i + 1);
    n.stats.p99 = x;  // repeats max_abs
    n.stats.min = -x;
    x = std::nextafter(x * 1.001, 1.0);
    r.analysis.norms.push_back(n);
  }
  ExpectSameAsTree(r, "repeated numbers");
}

// What `check --format json` prints is the writer's text and a newline.
TEST(ReportJsonWriter, TheJsonReportIsTheWritersText) {
  auto r = check_model(testing::data_dir() + "/hf/qwen3-tiny/bf16", no_cache());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(render_report(*r, ReportFormat::kJson, ReportOptions{}),
            result_to_json(*r).dump(2) + "\n");
}

}  // namespace
}  // namespace fusecheck
