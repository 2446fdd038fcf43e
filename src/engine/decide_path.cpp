#include "engine/decide_path.h"

#include <chrono>

#include "check/check.h"

namespace fusecheck {

Result<DirDecision> decide_kernels_for_dir(const std::string& dir, const KernelRequest& req,
                                           std::optional<Verdict> force_verdict,
                                           const std::string& device) {
  const auto t0 = std::chrono::steady_clock::now();
  DirDecision out;
  KernelDecision& d = out.decision;
  FC_ASSIGN(registry, NumericsRegistry::load(""));
  FC_ASSIGN(profile, registry.find(req.kernels));
  CheckOptions co = check_options_for(req);
  if (force_verdict) co.force_verdict = force_verdict;
  auto check = check_model(dir, co);
  if (!check.ok()) {
    // Strict is the caller's here: check_error tells "cannot check" from "incompatible".
    out.check_error = check.error().message;
    decide_unchecked(d, req, out.check_error, profile, 0);
    if (req.force) out.source = "forced";
  } else {
    const int64_t layers = check->config.num_layers;
    d.plan = KernelPlan::standard(layers);
    // The same rules as the engine's load-time decision (kernel_select.h), stored plans included,
    // for the device the caller names.
    const std::string refusal = decide_over_check(d, req, *check, profile, {dir, layers, device});
    out.source = d.source;
    out.verdict = d.measured_verdict ? *d.measured_verdict : check->verdict;
    if (!refusal.empty()) out.strict_refusal = true, d.message += refusal;
  }
  d.check_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace fusecheck
