#include "analysis/analyze.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace fusecheck {

namespace {

// Logit noise of one layer. Per-head q/k norms share one gain vector across heads; whole-projection
// norms (OLMo2) give every head its own slice, and query head h reads key head h / group.
LayerReport layer_noise(const ModelConfig& c, QkNormScope scope, int64_t layer, const NormGains* q,
                        const NormGains* k, const NumericsProfile& kernels) {
  LayerReport r;
  r.layer = layer;
  const size_t d = size_t(c.head_dim);
  if (scope == QkNormScope::kNone || !q || !k) {
    std::vector<float> unit(d, 1.0f);
    r.noise = logit_noise(unit, unit, kernels);
    return r;
  }
  r.has_qk_norm = true;
  std::vector<float> gq(d), gk(d);
  const int64_t heads = scope == QkNormScope::kPerHead ? 1 : c.num_heads;
  const int64_t group = c.num_heads / c.num_kv_heads;
  for (int64_t h = 0; h < heads; ++h) {
    const size_t qoff = size_t(h) * d;
    const size_t koff = scope == QkNormScope::kPerHead ? 0 : size_t(h / group) * d;
    for (size_t i = 0; i < d; ++i) {
      gq[i] = std::fabs(q->gains[qoff + i]);
      gk[i] = std::fabs(k->gains[koff + i]);
    }
    LogitNoise n = logit_noise(gq, gk, kernels);
    // NaN gains make the noise NaN; keep it visible rather than losing it in a max().
    if (h == 0 || n.amplification > r.noise.amplification || std::isnan(n.amplification)) {
      r.noise = n;
      r.worst_head = h;
    }
  }
  return r;
}

}  // namespace

Analysis analyze_gains(const ModelConfig& config, QkNormScope qk_scope,
                       const std::vector<NormGains>& norms, const NumericsProfile& kernels,
                       double extreme_threshold) {
  Analysis a;
  a.num_layers = config.num_layers;
  a.head_dim = config.head_dim;
  std::vector<const NormGains*> q_of(size_t(config.num_layers)), k_of(size_t(config.num_layers));
  std::map<std::string, std::vector<const NormReport*>> by_role;
  a.norms.reserve(norms.size());
  for (const auto& n : norms) {
    a.norms.push_back(
        {n.role, n.tensor, n.kind, n.layer, compute_gain_stats(n.gains, extreme_threshold)});
    if (n.layer >= 0 && n.layer < config.num_layers) {
      if (n.kind == NormKind::kQ) q_of[size_t(n.layer)] = &n;
      if (n.kind == NormKind::kK) k_of[size_t(n.layer)] = &n;
    }
  }
  for (const auto& r : a.norms)
    if (r.layer >= 0) by_role[r.role].push_back(&r);

  double sum_sq = 0;
  for (int64_t l = 0; l < config.num_layers; ++l) {
    a.layers.push_back(layer_noise(config, qk_scope, l, q_of[size_t(l)], k_of[size_t(l)], kernels));
    const double amp = a.layers.back().noise.amplification;
    sum_sq += amp * amp;
    if (l == 0 || amp > a.amplification || std::isnan(amp)) {
      a.amplification = amp;
      a.worst_layer = l;
    }
  }
  a.cumulative_amplification = std::sqrt(sum_sq / double(std::max<int64_t>(1, config.num_layers)));

  for (const auto& [role, reports] : by_role) {
    RoleSummary s;
    s.role = role;
    s.layers = int64_t(reports.size());
    std::vector<double> maxima;
    for (const NormReport* r : reports) {
      maxima.push_back(r->stats.max_abs);
      if (r->stats.max_abs > s.max_of_max || s.max_layer < 0) {
        s.max_of_max = r->stats.max_abs;
        s.max_layer = r->layer;
      }
      if (r->stats.count_above_extreme > 0) ++s.layers_above_extreme;
    }
    std::sort(maxima.begin(), maxima.end());
    const size_t m = maxima.size();
    s.median_of_max = m % 2 ? maxima[m / 2] : 0.5 * (maxima[m / 2 - 1] + maxima[m / 2]);
    a.roles.push_back(s);
  }
  return a;
}

}  // namespace fusecheck
