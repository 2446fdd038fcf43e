#include "engine/decide_path.h"

#include <chrono>
#include <cstdlib>

#include "check/cache.h"
#include "check/check.h"
#include "probe/probe_report.h"

namespace fusecheck {

namespace {

// The cached probe measurement for this checkpoint and profile, if any: it outranks the screen.
void explain(DirDecision& out, const KernelRequest& req, const std::string& dir, Verdict v) {
  KernelDecision& d = out.decision;
  if (out.source == "forced") {
    d.message = fmt::format(
        "NOTICE: fused kernels ({}) FORCED on a model the check calls {} ({}). Outputs may "
        "differ from the standard kernels; run: fusecheck check {} --kernels {}",
        req.kernels, verdict_name(v), d.basis, dir, req.kernels);
  } else if (v == Verdict::kCompatible) {
    if (d.static_verdict != v)
      d.message = fmt::format("fusecheck: using fused kernels ({}): {}", req.kernels, d.basis);
  } else if (v == Verdict::kWarning) {
    d.message = fmt::format(
        "WARNING: this model's normalization weights make fused kernels ({}) change its outputs "
        "measurably ({}).\nUsing fused kernels. To see the report, run: fusecheck check {} "
        "--kernels {}",
        req.kernels, d.basis, dir, req.kernels);
  } else if (out.strict_refusal) {
    d.message = fmt::format(
        "{} is INCOMPATIBLE with fused kernels ({}) by the {}; run: fusecheck check {} --kernels "
        "{}",
        dir, req.kernels, d.basis, dir, req.kernels);
  } else {
    d.message =
        fallback_warning(dir) + " --kernels " + req.kernels + "\n(decided by the " + d.basis + ")";
  }
}

}  // namespace

Result<DirDecision> decide_kernels_for_dir(const std::string& dir, const KernelRequest& req,
                                           std::optional<Verdict> force_verdict) {
  const auto t0 = std::chrono::steady_clock::now();
  DirDecision out;
  KernelDecision& d = out.decision;
  FC_ASSIGN(registry, NumericsRegistry::load(""));
  FC_ASSIGN(profile, registry.find(req.kernels));
  const bool force =
      req.force;  // the caller reads kForceFusedEnv (library code reads no environment)
  auto finish = [&]() {
    d.check_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return out;
  };
  CheckOptions co;
  co.kernels = req.kernels;
  co.use_cache = req.use_cache;
  co.cache_dir = req.cache_dir;
  co.force_verdict = force_verdict ? force_verdict : req.force_verdict;
  auto check = check_model(dir, co);
  if (!check.ok()) {
    out.check_error = check.error().message;
    if (force) {
      out.source = "forced", d.outcome = KernelOutcome::kForced;
      d.message =
          "NOTICE: fused kernels FORCED; the compatibility check could not run: " + out.check_error;
    } else {
      d.outcome = KernelOutcome::kFallback;
      d.message =
          "fusecheck: cannot check the model (" + out.check_error + "); using standard kernels";
    }
    return finish();
  }
  const int64_t layers = check->config.num_layers;
  d.plan = KernelPlan::standard(layers);
  const Verdict v = apply_measurement(d, req, *check, profile);
  out.source = d.source;
  out.verdict = v;
  if (force) {
    out.source = "forced";
    d.outcome = KernelOutcome::kForced;
  } else if (v == Verdict::kIncompatible) {
    d.outcome = KernelOutcome::kFallback;
    out.strict_refusal = req.strict;
  } else {
    d.outcome =
        v == Verdict::kCompatible ? KernelOutcome::kFused : KernelOutcome::kFusedWithWarning;
  }
  if (d.outcome != KernelOutcome::kFallback) d.plan = KernelPlan::from_profile(profile, layers);
  explain(out, req, dir, v);
  return finish();
}

}  // namespace fusecheck
