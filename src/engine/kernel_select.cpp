#include "engine/kernel_select.h"

#include <chrono>
#include <filesystem>

#include "check/check.h"
#include "db/database.h"
#include "plan/plan_search.h"
#include "plan/plan_store.h"
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
    case KernelOutcome::kPlan:
      return "fused (per-layer plan)";
  }
  return "?";
}

namespace {

struct Measured {
  Verdict verdict;
  std::string origin;  // "probe" or "database"
  std::string what;    // for the message
};

// The database's measurement for this checkpoint and profile; a database that is missing, damaged
// or unreadable gives no measurement (and a note when it is there but unusable).
std::optional<Measured> stored_measurement(const std::string& db_path,
                                           const std::string& fingerprint,
                                           const NumericsProfile& profile,
                                           const std::string& device, std::string& note) {
  std::error_code ec;
  if (!std::filesystem::exists(db_path, ec)) return std::nullopt;
  auto db = Database::open(db_path, DbMode::kReadOnly);
  if (!db) {
    note = "database not used: " + db.error().message;
    return std::nullopt;
  }
  auto m = find_measurement(*db, fingerprint, profile, device);
  if (!m) {
    note = "database not used: " + m.error().message;
    return std::nullopt;
  }
  if (!m->has_value()) return std::nullopt;
  auto probe = probe_from_json(*(*m)->record.probe);
  if (!probe) return std::nullopt;
  const DbRecord& r = (*m)->record;
  return Measured{probe->verdict, (*m)->origin(),
                  r.is_local() ? "probe measurement of " + r.date.substr(0, 10) + " in the database"
                               : "measurement in the database, " + r.source};
}

// (layer, group) pairs the plan fuses, of those the profile offers.
std::pair<int64_t, int64_t> fused_groups(const KernelPlan& plan, const NumericsProfile& profile) {
  int64_t kept = 0, total = 0;
  for (int64_t l = 0; l < static_cast<int64_t>(plan.layers.size()); ++l)
    for (FusedGroup g : profile.fusion) ++total, kept += plan.fuses(l, g) ? 1 : 0;
  return {kept, total};
}

// The stored per-layer plan for an INCOMPATIBLE model, when it was measured within its budget and
// runs on this build; sets the decision and returns true.
bool offer_stored_plan(KernelDecision& d, const KernelRequest& req, const CheckResult& check,
                       const NumericsProfile& profile, const DecisionSite& at) {
  if (!req.use_cache || req.db_path.empty()) return false;
  std::string note;
  auto p = find_stored_plan(req.db_path, check.fingerprint, profile, at.device, note);
  if (!note.empty()) d.message += "fusecheck: note: " + note + "\n";
  if (!p || !p->measured.within(p->budget)) return false;
  auto plan = runnable_plan(*p, req.db_path + " (stored plan)");
  if (!plan || static_cast<int64_t>(plan->layers.size()) != at.layers) return false;
  const auto [kept, total] = fused_groups(*plan, profile);
  d.outcome = KernelOutcome::kPlan, d.plan = std::move(*plan), d.source = "plan";
  d.message += fmt::format(
      "fusecheck: {} is INCOMPATIBLE with {} as a whole ({}); using the stored per-layer plan "
      "instead: {} of {} layer groups fused, measured {:.3g} added KL and {:.2f} top-1 points "
      "(budget {:.3g}, {:.2f}). See: fusecheck plan {} --kernels {}",
      at.dir, req.kernels, d.basis, kept, total, p->measured.added_kl, p->measured.top1_loss_points,
      p->budget.kl, p->budget.top1_points, at.dir, req.kernels);
  return true;
}

}  // namespace

Verdict apply_measurement(KernelDecision& d, const KernelRequest& req, const CheckResult& check,
                          const NumericsProfile& profile, const std::string& device) {
  d.static_verdict = check.verdict;
  d.basis = "static check", d.source = "static";
  if (!req.use_cache || req.db_path.empty()) return check.verdict;
  std::string note;
  auto stored = stored_measurement(req.db_path, check.fingerprint, profile, device, note);
  if (!note.empty()) d.message = "fusecheck: note: " + note + "\n";
  if (!stored) return check.verdict;
  d.measured_verdict = stored->verdict;
  d.source = stored->origin;
  if (stored->verdict != check.verdict)
    d.basis = fmt::format("{} ({}), which outranks the static check ({})", stored->what,
                          verdict_name(stored->verdict), verdict_name(check.verdict));
  else
    d.basis = "static check, confirmed by the " + stored->what;
  return stored->verdict;
}

std::string decide_over_check(KernelDecision& d, const KernelRequest& req, const CheckResult& check,
                              const NumericsProfile& profile, const DecisionSite& at) {
  const Verdict verdict = apply_measurement(d, req, check, profile, at.device);
  const KernelPlan fused = KernelPlan::from_profile(profile, at.layers);
  if (req.force) {
    d.outcome = KernelOutcome::kForced, d.plan = fused, d.source = "forced";
    d.message += fmt::format(
        "NOTICE: fused kernels ({}) FORCED on a model the check calls {} ({}). Outputs may "
        "differ from the standard kernels; run: fusecheck check {} --kernels {}",
        req.kernels, verdict_name(verdict), d.basis, at.dir, req.kernels);
    return "";
  }
  switch (verdict) {
    case Verdict::kCompatible:
      d.outcome = KernelOutcome::kFused, d.plan = fused;
      if (d.static_verdict != verdict)
        d.message += fmt::format("fusecheck: using fused kernels ({}): {}", req.kernels, d.basis);
      break;
    case Verdict::kWarning:
      d.outcome = KernelOutcome::kFusedWithWarning, d.plan = fused;
      d.message += fmt::format(
          "WARNING: {} fused kernels ({}) change its outputs measurably ({}).\nUsing fused "
          "kernels. To see the report, run: fusecheck check {} --kernels {}",
          d.measured_verdict ? "a probe measurement of this model found that"
                             : "this model's normalization weights make",
          req.kernels, d.basis, at.dir, req.kernels);
      break;
    case Verdict::kIncompatible:
      if (offer_stored_plan(d, req, check, profile, at)) break;
      d.outcome = KernelOutcome::kFallback;
      if (req.strict)
        return fmt::format(
            "{} is INCOMPATIBLE with fused kernels ({}) by the {}; run: fusecheck check {} "
            "--kernels {}",
            at.dir, req.kernels, d.basis, at.dir, req.kernels);
      d.message += fallback_warning(at.dir, d.measured_verdict.has_value()) + " --kernels " +
                   req.kernels + "\n(decided by the " + d.basis + ")";
      break;
  }
  return "";
}

void decide_unchecked(KernelDecision& d, const KernelRequest& req, const std::string& error,
                      const NumericsProfile& profile, int64_t layers) {
  if (req.force) {
    d.outcome = KernelOutcome::kForced, d.source = "forced";
    d.plan = KernelPlan::from_profile(profile, layers);
    d.message = "NOTICE: fused kernels FORCED; the compatibility check could not run: " + error;
    return;
  }
  d.outcome = KernelOutcome::kFallback;
  d.message = "fusecheck: cannot check the model (" + error + "); using standard kernels";
}

CheckOptions check_options_for(const KernelRequest& req) {
  CheckOptions co;
  co.kernels = req.kernels;
  co.use_cache = req.use_cache;
  co.cache_dir = req.cache_dir;
  co.force_verdict = req.force_verdict;
  return co;
}

Result<KernelDecision> decide_kernels(const Model& m, const KernelRequest& req) {
  const auto t0 = std::chrono::steady_clock::now();
  KernelDecision d;
  d.plan = m.standard_plan();
  if (!req.use_custom_kernels) return d;
  FC_ASSIGN(registry, NumericsRegistry::load(""));
  FC_ASSIGN(profile, registry.find(req.kernels));
  auto check = check_checkpoint(m.checkpoint(),
                                check_options_for(req));  // the model's open checkpoint, not reread
  if (!check.ok() && req.strict && !req.force)
    return make_error("--strict: cannot check the model: {}", check.error().message);
  if (!check.ok()) {
    decide_unchecked(d, req, check.error().message, profile, m.config().num_layers);
  } else {
    const DecisionSite at{m.dir(), m.config().num_layers, m.device()};
    const std::string refusal = decide_over_check(d, req, *check, profile, at);
    if (!refusal.empty()) return make_error("--strict: {}", refusal);
  }
  d.check_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

}  // namespace fusecheck
