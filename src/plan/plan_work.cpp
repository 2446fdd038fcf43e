// How much of a profile's fused work a plan keeps, and the plan a plan file runs.
#include "plan/plan_search.h"

namespace fusecheck {

namespace {

struct Work {
  double ops = 0, bytes = 0, launches = 0;
};

// Per token, the work of the standard ops one fused group replaces in one layer: floating-point
// operations, bytes read and written (weights in the checkpoint's dtype, activations in the
// path's), and kernel launches. An estimate to weigh the groups against each other, not a
// measurement. ctx: the mean context attention reads.
Work group_work(const ModelConfig& c, FusedGroup g, double ab, double wb, double ctx) {
  const double D = static_cast<double>(c.hidden_size), F = static_cast<double>(c.intermediate_size);
  const double q = static_cast<double>(c.num_heads * c.head_dim);
  const double kv = static_cast<double>(c.num_kv_heads * c.head_dim);
  switch (g) {
    case FusedGroup::kAddRmsnorm:  // two residual adds and two RMSNorms
      return {10 * D, 10 * D * ab, 4};
    case FusedGroup::kRmsnormQkv:  // the input norm and the q, k, v projections
      return {4 * D + 2 * D * (q + 2 * kv), D * (q + 2 * kv) * wb + (2 * D + q + 2 * kv) * ab, 4};
    case FusedGroup::kQkNormRope:  // q/k norms and RoPE on q and k
      return {10 * (q + kv), 4 * (q + kv) * ab, 4};
    case FusedGroup::kAttention:  // q.k, softmax and p.v over the context
      return {4 * q * ctx + 5 * static_cast<double>(c.num_heads) * ctx,
              2 * kv * ctx * ab + 2 * q * ab, 3};
    case FusedGroup::kGateUpSilu:  // gate and up projections and silu * up
      return {4 * D * F + 4 * F, 2 * D * F * wb + (D + 3 * F) * ab, 3};
  }
  return {};
}

}  // namespace

PlanKept kept_work(const Model& m, const NumericsProfile& profile, const KernelPlan& plan,
                   int64_t context) {
  const ModelConfig& c = m.config();
  const double ab = m.act_type(Precision::kModel) == ActType::F32 ? 4 : 2;
  const double wb = ab;  // the engine's weights are in the model's dtype
  const double ctx = std::max<double>(1, static_cast<double>(context) / 2);
  Work all, kept;
  PlanKept k;
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (FusedGroup g : profile.fusion) {
      const Work w = group_work(c, g, ab, wb, ctx);
      all.ops += w.ops, all.bytes += w.bytes, all.launches += w.launches;
      ++k.groups_total;
      if (!plan.fuses(l, g)) continue;
      kept.ops += w.ops, kept.bytes += w.bytes, kept.launches += w.launches;
      ++k.groups;
    }
  if (k.groups_total == 0) return k;
  k.ops = kept.ops / all.ops, k.bytes = kept.bytes / all.bytes;
  k.launches = kept.launches / all.launches;
  return k;
}

Result<KernelPlan> runnable_plan(const PlanFile& p, const std::string& path) {
  FC_ASSIGN(registry, NumericsRegistry::load(""));
  auto profile = registry.find(p.profile);
  if (!profile) return make_error("{}: {}", path, profile.error().message);
  KernelPlan k = KernelPlan::from_profile(*profile, static_cast<int64_t>(p.plan.layers.size()));
  k.profile = "plan:" + p.profile;
  const std::vector<KvLayerFormat> kv = kv_candidates(*profile);
  for (size_t l = 0; l < k.layers.size(); ++l) {
    const LayerPlan& want = p.plan.layers[l];
    for (int g = 0; g < kFusedGroupCount; ++g)
      if (want.fused[static_cast<size_t>(g)] && !k.layers[l].fused[static_cast<size_t>(g)])
        return make_error("{}: layer {} fuses {}, which profile {} does not", path, l,
                          fused_group_name(FusedGroup(g)), p.profile);
    if (std::find(kv.begin(), kv.end(), want.kv) == kv.end())
      return make_error("{}: layer {} stores KV as {}, which profile {} does not offer", path, l,
                        kv_layer_format_name(want.kv), p.profile);
    k.layers[l] = want;
  }
  return k;
}

}  // namespace fusecheck
