// The load-time decision (the engine's integration point): when fused kernels are requested, check
// the model for that kernel profile and choose.
//   COMPATIBLE   -> fused
//   WARNING      -> fused, with the warning
//   INCOMPATIBLE -> standard kernels, with the fallback warning and the command that shows
//                   the report; an error under strict
//   forced       -> fused whatever the verdict, with a loud notice (flag or kForceFusedEnv)
// A cached probe measurement for the same checkpoint and profile outranks the static screen, and
// the reason says so. A checkpoint the checker cannot read falls back (or fails under strict).
#pragma once

#include <optional>
#include <string>

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
  bool use_cache = true;
  std::string cache_dir;  // "" = the default cache directory
};

enum class KernelOutcome { kStandard, kFused, kFusedWithWarning, kFallback, kForced };
std::string_view kernel_outcome_name(KernelOutcome o);  // "standard", "fused", ...

struct KernelDecision {
  KernelOutcome outcome = KernelOutcome::kStandard;
  KernelPlan plan;  // what to run
  std::optional<Verdict> static_verdict, measured_verdict;
  std::string basis;    // "static check" or "cached probe measurement" or "" (not requested)
  std::string message;  // lines for stderr ("" when there is nothing to say)
  double check_ms = 0;  // time the decision added to loading
};

// Errors: an unknown profile; under strict, an INCOMPATIBLE model or one the checker cannot read.
Result<KernelDecision> decide_kernels(const Model& m, const KernelRequest& req);

}  // namespace fusecheck
