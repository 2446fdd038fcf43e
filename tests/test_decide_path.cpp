// decide_kernels_for_dir (the decision before any weight is loaded, for loaders and the Python
// package) against decide_kernels on the loaded Model: the same outcome, verdicts, basis and
// message for every request, with and without a probe measurement in the compatibility database.
#include <gtest/gtest.h>

#include "check/cache.h"
#include "check/check.h"
#include "db/store.h"
#include "engine/decide_path.h"
#include "probe/probe_report.h"
#include "testing.h"

namespace fusecheck {
namespace {

const std::string kExtreme = std::string(FUSECHECK_TEST_DATA) + "/hf/qwen3-tiny-extreme/bf16";

void expect_same(const Model& m, KernelRequest req) {
  req.use_custom_kernels = true;

  auto want = decide_kernels(m, req);
  auto got = decide_kernels_for_dir(m.dir(), req);
  ASSERT_TRUE(got.ok()) << got.error().message;
  const std::string what =
      req.kernels + (req.strict ? " strict" : "") + (req.force ? " force" : "");
  if (!want.ok()) {  // strict on an INCOMPATIBLE model: the engine refuses; the dir form says so
    EXPECT_TRUE(got->strict_refusal) << what;
    EXPECT_EQ(got->verdict, Verdict::kIncompatible) << what;
    return;
  }
  EXPECT_FALSE(got->strict_refusal) << what;
  EXPECT_EQ(got->decision.outcome, want->outcome) << what;
  EXPECT_EQ(got->decision.static_verdict, want->static_verdict) << what;
  EXPECT_EQ(got->decision.measured_verdict, want->measured_verdict) << what;
  EXPECT_EQ(got->decision.basis, want->basis) << what;
  EXPECT_EQ(got->decision.message, want->message) << what;
  EXPECT_EQ(got->decision.plan.profile, want->plan.profile) << what;
  EXPECT_EQ(got->source, req.force ? "forced" : want->measured_verdict ? "probe" : "static");
}

TEST(DecidePath, MatchesTheEngineDecision) {
  auto m = Model::load(kExtreme);
  ASSERT_TRUE(m.ok()) << m.error().message;
  testing::TempDir cache;
  for (std::string k : {"fused", "generic", "fused-int8kv"})
    for (bool strict : {false, true})
      for (bool force : {false, true}) {
        KernelRequest req;
        req.kernels = k, req.strict = strict, req.force = force, req.cache_dir = cache.path();
        expect_same(*m, req);
      }
  // A cached measurement that contradicts the screen: both forms follow it.
  CheckOptions co;
  co.kernels = "fused-int8kv", co.use_cache = false;
  auto check = check_model(kExtreme, co);
  ASSERT_TRUE(check.ok());
  ProbeResult measured;
  measured.profile = "fused-int8kv";
  measured.verdict = Verdict::kCompatible;
  measured.reason = "test measurement";
  const std::string db = cache / "fusecheck.db";
  ASSERT_EQ(record_locally(db, local_record(*check, &measured, ModelIdentity{})), "");
  KernelRequest req;
  req.kernels = "fused-int8kv", req.cache_dir = cache.path(), req.db_path = db;
  expect_same(*m, req);
  auto got = decide_kernels_for_dir(kExtreme, req);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->source, "probe");
  EXPECT_EQ(got->verdict, Verdict::kCompatible);
}

// A stored per-layer plan (`fusecheck plan --db`) for a model whose full profile a probe
// measurement calls INCOMPATIBLE: the directory form offers it exactly as the engine does, strict
// included; before the plan is stored both fall back.
TEST(DecidePath, OffersAStoredPlanLikeTheEngine) {
  auto m = Model::load(kExtreme);
  ASSERT_TRUE(m.ok()) << m.error().message;
  testing::TempDir t;
  const std::string db = t / "fusecheck.db";
  auto p = testing::run_cli("probe " + kExtreme +
                            " --kernels fused-int8kv --greedy-tokens 0 --db " + db);
  ASSERT_EQ(p.exit_code, 2) << p.err;  // the probe's INCOMPATIBLE
  KernelRequest req;
  req.kernels = "fused-int8kv", req.cache_dir = t.path(), req.db_path = db;
  auto before = decide_kernels_for_dir(kExtreme, req);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->decision.outcome, KernelOutcome::kFallback);
  auto pl = testing::run_cli("plan " + kExtreme + " --kernels fused-int8kv -q --out " +
                             t / "p.json" + " --db " + db);
  ASSERT_EQ(pl.exit_code, 0) << pl.err;
  for (bool strict : {false, true}) {
    req.strict = strict;
    KernelRequest engine = req;
    engine.use_custom_kernels = true;
    auto want = decide_kernels(*m, engine);
    auto got = decide_kernels_for_dir(kExtreme, req);
    ASSERT_TRUE(want.ok()) << want.error().message;  // strict accepts a plan within budget
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_FALSE(got->strict_refusal);
    EXPECT_EQ(got->decision.outcome, KernelOutcome::kPlan);
    EXPECT_EQ(want->outcome, KernelOutcome::kPlan);
    EXPECT_EQ(got->source, "plan");
    EXPECT_EQ(got->verdict, Verdict::kIncompatible);
    EXPECT_EQ(got->decision.message, want->message);
    EXPECT_NE(got->decision.message.find("using the stored per-layer plan"), std::string::npos);
    EXPECT_EQ(got->decision.plan.profile, want->plan.profile);
    EXPECT_EQ(got->decision.plan.kv_formats(), want->plan.kv_formats());
    ASSERT_EQ(got->decision.plan.layers.size(), want->plan.layers.size());
    for (size_t l = 0; l < want->plan.layers.size(); ++l)
      EXPECT_EQ(got->decision.plan.layers[l].fused, want->plan.layers[l].fused) << l;
  }
  // Forcing still outranks the plan.
  req.force = true;
  auto forced = decide_kernels_for_dir(kExtreme, req);
  ASSERT_TRUE(forced.ok());
  EXPECT_EQ(forced->decision.outcome, KernelOutcome::kForced);
}

TEST(DecidePath, UnreadableCheckpointIsReportedNotRaised) {
  testing::TempDir dir;
  KernelRequest req;
  req.use_custom_kernels = true, req.use_cache = false;
  auto d = decide_kernels_for_dir(dir.path(), req);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->decision.outcome, KernelOutcome::kFallback);
  EXPECT_FALSE(d->check_error.empty());
  EXPECT_FALSE(d->verdict.has_value());
  req.kernels = "no-such-profile";
  EXPECT_FALSE(decide_kernels_for_dir(kExtreme, req).ok());
}

}  // namespace
}  // namespace fusecheck
