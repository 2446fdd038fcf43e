// The load-time decision (the engine's integration point): when fused kernels are requested, check
// the model for that kernel profile and choose.
//   COMPATIBLE   -> fused
//   WARNING      -> fused, with the warning
//   INCOMPATIBLE -> standard kernels, with the fallback warning and the command that shows
//                   the report; an error under strict
//   INCOMPATIBLE, but a per-layer plan for this checkpoint and profile is stored in the database
//   and was measured within its budget (src/plan, `fusecheck plan --db`)
//                -> that plan (some layers and groups fused), saying so; strict accepts it
//   forced       -> fused whatever the verdict, with a loud notice (flag or kForceFusedEnv)
// A probe measurement in the compatibility database (src/db) for the same checkpoint, profile and
// device outranks the static screen, and the message says where the verdict came from: "probe"
// (measured here), "database" (an imported record) or "static". The check reuses the checkpoint
// the model has already opened. A checkpoint the checker cannot read falls back (or fails under
// strict); a database that cannot be read is a note, never a failure.
#pragma once

#include <optional>
#include <string>

#include "check/check.h"
#include "check/score.h"
#include "kernels/kernel_plan.h"
#include "model/model.h"
#include "util/result.h"

namespace fusecheck {

// "1": as --force-fused-kernels. Read by the CLI, which sets KernelRequest::force.
constexpr const char* kForceFusedEnv = "FUSECHECK_FORCE_FUSED";

struct KernelRequest {
  bool use_custom_kernels = false;       // ask for fused kernels at all
  std::string kernels = "fused";         // the fused profile to use (data/kernels.json)
  bool strict = false;                   // an INCOMPATIBLE model is an error instead of a fallback
  bool force = false;                    // fuse whatever the check says
  std::optional<Verdict> force_verdict;  // the check's testing override (kForceStatusEnv)
  bool use_cache = true;                 // the check's memo cache and the database
  std::string cache_dir;                 // "" = the default cache directory
  std::string db_path;  // the compatibility database; "" = none (the CLI resolves the default)
};

enum class KernelOutcome { kStandard, kFused, kFusedWithWarning, kFallback, kForced, kPlan };
std::string_view kernel_outcome_name(KernelOutcome o);  // "standard", "fused", ...

struct KernelDecision {
  KernelOutcome outcome = KernelOutcome::kStandard;
  KernelPlan plan;  // what to run
  std::optional<Verdict> static_verdict, measured_verdict;
  std::string basis;    // "static check", "probe measurement in the database", ... ("" = none)
  std::string source;   // where the verdict came from: "static", "probe", "database", "forced"
  std::string message;  // lines for stderr ("" when there is nothing to say)
  double check_ms = 0;  // time the decision added to loading
};

// The static verdict, or the database's measurement when there is one (it outranks the screen):
// sets d's static and measured verdicts, source, basis and any note; returns the verdict to act on.
// The one lookup of a stored measurement for the load-time decision (decide_kernels and
// decide_kernels_for_dir).
// device: where the model runs ("cpu", "cuda"); a measurement on one device never decides for
// another.
Verdict apply_measurement(KernelDecision& d, const KernelRequest& req, const CheckResult& check,
                          const NumericsProfile& profile, const std::string& device = "cpu");

// Where a decision is made: the checkpoint directory (named in messages), its layer count and the
// device it runs on (a stored measurement or plan for another device never decides here).
struct DecisionSite {
  std::string dir;
  int64_t layers = 0;
  std::string device = "cpu";
};

// The decision over a check result and what the database stores for it (measurement, plan):
// forced > stored plan (INCOMPATIBLE only) > the verdict. The one copy of the outcome and message
// rules, shared by decide_kernels and decide_kernels_for_dir so the two cannot drift. Returns ""
// or, under strict on an INCOMPATIBLE model with no usable stored plan, the one-line refusal (d is
// then the fallback, without the refusal in its message).
std::string decide_over_check(KernelDecision& d, const KernelRequest& req, const CheckResult& check,
                              const NumericsProfile& profile, const DecisionSite& at);

// The decision when the checker could not read the model: forced (the profile over `layers`), or
// the fallback; strict is the caller's (the engine refuses, the directory form reports it).
void decide_unchecked(KernelDecision& d, const KernelRequest& req, const std::string& error,
                      const NumericsProfile& profile, int64_t layers);

// Errors: an unknown profile; under strict, an INCOMPATIBLE model or one the checker cannot read.
// The check the decision runs: the request's profile, cache and forced verdict.
CheckOptions check_options_for(const KernelRequest& req);

Result<KernelDecision> decide_kernels(const Model& m, const KernelRequest& req);

}  // namespace fusecheck
