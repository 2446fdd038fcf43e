#include "plan/plan_search.h"

#include <algorithm>

namespace fusecheck {

namespace {

// One choice the search can make: fuse a group in a layer, or store a layer's KV in a format.
struct Unit {
  int64_t layer = 0;
  int group = -1;     // a FusedGroup, or -1 for a KV unit
  KvLayerFormat kv;   // KV units
  double kl = 0;      // measured added KL when taken alone (clamped at 0)
  double top1 = 0;    // measured top-1 loss in points when taken alone (clamped at 0)
  double shadow = 0;  // the layer's shadow error with it (group units)
};

void apply(KernelPlan& p, const Unit& u) {
  if (u.group >= 0)
    p.layers[static_cast<size_t>(u.layer)].fused[static_cast<size_t>(u.group)] = true;
  else
    p.layers[static_cast<size_t>(u.layer)].kv = u.kv;
}

// The standard plan with the profile's accumulator setting (it matters only where attention is
// fused) and KV summary.
KernelPlan empty_plan(const NumericsProfile& prof, int64_t L) {
  KernelPlan p = KernelPlan::from_profile(prof, L);
  p.profile = "plan:" + prof.name;
  for (auto& l : p.layers) l = LayerPlan{};
  return p;
}

KernelPlan plan_of(const NumericsProfile& prof, int64_t L, const std::vector<Unit>& units,
                   size_t n) {
  KernelPlan p = empty_plan(prof, L);
  for (size_t i = 0; i < n && i < units.size(); ++i) apply(p, units[i]);
  return p;
}

// Every unit measured alone against the reference (the rest standard).
Result<std::vector<Unit>> measure_units(const Model& m, const ProbeBaseline& b,
                                        const PlanSearchOptions& o) {
  const int64_t L = m.config().num_layers;
  const std::vector<KvLayerFormat> kv = kv_candidates(o.profile);
  std::vector<Unit> units;
  for (int64_t l = 0; l < L; ++l) {
    for (FusedGroup g : o.profile.fusion) units.push_back({l, static_cast<int>(g), {}, 0, 0, 0});
    for (size_t k = 0; k + 1 < kv.size(); ++k) units.push_back({l, -1, kv[k], 0, 0, 0});
  }
  const KernelPlan none = empty_plan(o.profile, L);
  for (size_t i = 0; i < units.size(); ++i) {
    Unit& u = units[i];
    if (o.progress)
      o.progress(0.1 + 0.7 * static_cast<double>(i) / static_cast<double>(units.size()),
                 "layer " + std::to_string(u.layer));
    KernelPlan one = none;
    apply(one, u);
    FC_ASSIGN(s, measure_plan(m, b, one));
    u.kl = std::max(0.0, s.added_kl);
    u.top1 = std::max(0.0, 100 * s.top1_loss);
    if (u.group >= 0) {
      FC_ASSIGN(sh, layer_shadow_error(m, b, one, u.layer));
      u.shadow = sh;
    }
  }
  return units;
}

// Greedy by sensitivity: cheapest first, while the summed costs fit the budget. A KV unit replaces
// the layer's earlier (less compact) choice, and is charged only the difference.
std::vector<Unit> greedy(std::vector<Unit> units, const PlanBudget& budget,
                         const std::vector<KvLayerFormat>& kv) {
  std::stable_sort(units.begin(), units.end(), [](const Unit& a, const Unit& b) {
    return a.kl != b.kl ? a.kl < b.kl : a.top1 != b.top1 ? a.top1 < b.top1 : a.shadow < b.shadow;
  });
  const auto rank = [&](const KvLayerFormat& f) {
    return std::find(kv.begin(), kv.end(), f) - kv.begin();  // 0 = most compact
  };
  std::vector<Unit> chosen;
  double kl = 0, top1 = 0;
  for (const Unit& u : units) {
    double dkl = u.kl, dtop1 = u.top1;
    const Unit* prev = nullptr;
    if (u.group < 0)
      for (const Unit& c : chosen)
        if (c.group < 0 && c.layer == u.layer) prev = &c;
    if (prev && rank(prev->kv) <= rank(u.kv)) continue;  // already as compact
    if (prev) dkl -= prev->kl, dtop1 -= prev->top1;
    if (kl + dkl > budget.kl || top1 + dtop1 > budget.top1_points) continue;
    kl += dkl, top1 += dtop1;
    chosen.push_back(u);
  }
  return chosen;
}

}  // namespace

std::vector<KvLayerFormat> kv_candidates(const NumericsProfile& p) {
  std::vector<KvLayerFormat> out;
  if (p.kv_format != KvFormat::kSame) {
    out.push_back({p.kv_format, p.kv_scale});
    const bool scaled = p.kv_format == KvFormat::kInt8 || p.kv_format == KvFormat::kFp8E4M3;
    if (scaled && p.kv_scale == KvScale::kPerTensor)
      out.push_back({p.kv_format, KvScale::kPerChannel});
  }
  out.push_back({KvFormat::kSame, KvScale::kPerTensor});
  return out;
}

PlanMeasure to_measure(const PlanStats& s, const ProbeBaseline& b) {
  PlanMeasure m;
  m.added_kl = s.added_kl;
  m.kl_vs_fp32 = s.fused_vs_fp32.kl_mean;
  m.standard_kl = b.standard_vs_fp32.kl_mean;
  m.top1 = s.fused_vs_fp32.top1;
  m.standard_top1 = b.standard_vs_fp32.top1;
  m.top1_loss_points = 100 * s.top1_loss;
  m.positions = b.positions;
  return m;
}

Result<PlanSearchResult> search_plan(const Model& m, const PlanSearchOptions& o) {
  const int64_t L = m.config().num_layers;
  if (o.progress) o.progress(0.0, "reference");
  FC_ASSIGN(base, probe_baseline(m, o.inputs));
  PlanSearchResult r;
  const KernelPlan full = KernelPlan::from_profile(o.profile, L);
  FC_ASSIGN(full_stats, measure_plan(m, base, full));
  r.full_profile = to_measure(full_stats, base);
  if (r.full_profile.within(o.budget)) {
    r.plan = full, r.measured = r.full_profile;
    if (o.progress) o.progress(1.0, "done");
    return r;
  }
  FC_ASSIGN(units, measure_units(m, base, o));
  for (const Unit& u : units)
    r.sensitivity.push_back({u.layer,
                             u.group >= 0 ? std::string(fused_group_name(FusedGroup(u.group)))
                                          : "kv:" + kv_layer_format_name(u.kv),
                             u.kl, u.top1, u.shadow});
  std::vector<Unit> order = greedy(units, o.budget, kv_candidates(o.profile));
  // Bisect for the longest prefix of the greedy order that the measurement accepts; drop the unit
  // after it (the one that broke the budget) and go on with the rest. Prefix 0 (standard) fits.
  size_t good = 0;
  for (int round = 0; round < o.max_rounds && good < order.size(); ++round) {
    if (o.progress) o.progress(0.8 + 0.2 * round / o.max_rounds, "checking the whole plan");
    size_t lo = good, hi = order.size();
    FC_ASSIGN(all, measure_plan(m, base, plan_of(o.profile, L, order, hi)));
    ++r.measurements;
    if (to_measure(all, base).within(o.budget)) {
      good = hi;
      break;
    }
    while (hi - lo > 1) {
      const size_t mid = (lo + hi) / 2;
      FC_ASSIGN(s, measure_plan(m, base, plan_of(o.profile, L, order, mid)));
      ++r.measurements;
      (to_measure(s, base).within(o.budget) ? lo : hi) = mid;
    }
    good = lo;
    order.erase(order.begin() + static_cast<std::ptrdiff_t>(lo));  // the unit that broke it
  }
  order.resize(std::min(good, order.size()));
  r.plan = plan_of(o.profile, L, order, order.size());
  // The measurement of exactly the plan returned.
  FC_ASSIGN(final_stats, measure_plan(m, base, r.plan));
  ++r.measurements;
  r.measured = to_measure(final_stats, base);
  if (o.progress) o.progress(1.0, "done");
  return r;
}

}  // namespace fusecheck
