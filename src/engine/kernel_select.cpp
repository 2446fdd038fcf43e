#include "engine/kernel_select.h"

#include <chrono>
#include <cstdlib>

#include "check/cache.h"
#include "check/check.h"
#include "probe/probe_report.h"

namespace fusecheck {

std::string_view kernel_outcome_name(KernelOutcome o) {
  switch (o) {
    case KernelOutcome::kStandard:
      return "standard";
    case KernelOutcome::kFused:
      return "fused";
    case KernelOutcome::kFusedWithWarning:
      return "fused (warning)";
    case KernelOutcome::kFallback:
      return "standard (fallback)";
    case KernelOutcome::kForced:
      return "fused (forced)";
  }
  return "?";
}

Result<KernelDecision> decide_kernels(const Model& m, const KernelRequest& req) {
  const auto t0 = std::chrono::steady_clock::now();
  KernelDecision d;
  d.plan = m.standard_plan();
  if (!req.use_custom_kernels) return d;
  FC_ASSIGN(registry, NumericsRegistry::load(""));
  FC_ASSIGN(profile, registry.find(req.kernels));
  const KernelPlan fused = KernelPlan::from_profile(profile, m.config().num_layers);
  const char* env = req.read_env ? std::getenv(kForceFusedEnv) : nullptr;
  const bool force = req.force || (env && std::string(env) == "1");
  auto finish = [&]() {
    d.check_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return d;
  };

  CheckOptions co;
  co.kernels = req.kernels;
  co.use_cache = req.use_cache;
  co.cache_dir = req.cache_dir;
  auto check = check_model(m.dir(), co);
  if (!check.ok()) {
    if (force) {
      d.outcome = KernelOutcome::kForced, d.plan = fused;
      d.message = "NOTICE: fused kernels FORCED; the compatibility check could not run: " +
                  check.error().message;
      return finish();
    }
    if (req.strict)
      return make_error("--strict: cannot check the model: {}", check.error().message);
    d.outcome = KernelOutcome::kFallback;
    d.message =
        "fusecheck: cannot check the model (" + check.error().message + "); using standard kernels";
    return finish();
  }
  d.static_verdict = check->verdict;
  Verdict verdict = check->verdict;
  d.basis = "static check";
  if (req.use_cache) {  // a measurement outranks the screen
    ResultCache cache(req.cache_dir);
    if (auto v = cache.load(probe_cache_key(check->fingerprint, profile, m.device())))
      if (auto probe = probe_from_json(*v)) {
        d.measured_verdict = probe->verdict;
        if (probe->verdict != verdict)
          d.basis =
              fmt::format("cached probe measurement ({}), which outranks the static check ({})",
                          verdict_name(probe->verdict), verdict_name(verdict));
        else
          d.basis = "static check, confirmed by a cached probe measurement";
        verdict = probe->verdict;
      }
  }
  if (force) {
    d.outcome = KernelOutcome::kForced, d.plan = fused;
    d.message = fmt::format(
        "NOTICE: fused kernels ({}) FORCED on a model the check calls {} ({}). Outputs may "
        "differ from the standard kernels; run: fusecheck check {} --kernels {}",
        req.kernels, verdict_name(verdict), d.basis, m.dir(), req.kernels);
    return finish();
  }
  switch (verdict) {
    case Verdict::kCompatible:
      d.outcome = KernelOutcome::kFused, d.plan = fused;
      if (d.static_verdict != verdict)
        d.message = fmt::format("fusecheck: using fused kernels ({}): {}", req.kernels, d.basis);
      break;
    case Verdict::kWarning:
      d.outcome = KernelOutcome::kFusedWithWarning, d.plan = fused;
      d.message = fmt::format(
          "WARNING: this model's normalization weights make fused kernels ({}) change its outputs "
          "measurably ({}).\nUsing fused kernels. To see the report, run: fusecheck check {} "
          "--kernels {}",
          req.kernels, d.basis, m.dir(), req.kernels);
      break;
    case Verdict::kIncompatible:
      if (req.strict)
        return make_error(
            "--strict: {} is INCOMPATIBLE with fused kernels ({}) by the {}; run: fusecheck check "
            "{} --kernels {}",
            m.dir(), req.kernels, d.basis, m.dir(), req.kernels);
      d.outcome = KernelOutcome::kFallback;
      d.message = fallback_warning(m.dir()) + " --kernels " + req.kernels + "\n(decided by the " +
                  d.basis + ")";
      break;
  }
  return finish();
}

}  // namespace fusecheck
