#include "analysis/analyze.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <span>
#include <thread>

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

// The noise of a layer without q/k norms with k_proj's key magnitudes: unit q gains (nothing
// to read for q cheaply), each kv head's own key gains; the worst kv head counts.
LogitNoise key_rows_noise(const ModelConfig& c, const KeyRows& rows,
                          const NumericsProfile& kernels) {
  const size_t d = size_t(c.head_dim);
  const std::vector<float> unit(d, 1.0f);
  LogitNoise worst;
  for (int64_t h = 0; h < c.num_kv_heads; ++h) {
    std::span<const float> gk(rows.rms.data() + size_t(h) * d, d);
    LogitNoise n = logit_noise(unit, gk, kernels);
    if (h == 0 || n.key_cache_loss > worst.key_cache_loss || std::isnan(n.key_cache_loss))
      worst = n;
  }
  return worst;
}

// Below this many channels in all, one thread computes every norm's statistics: starting a
// thread costs more than it saves (a 0.6B model has ~65,000 channels, a 235B one ~800,000).
constexpr size_t kParallelStatsMin = 200'000;

// Each norm's statistics, up to `threads` at a time (norm i on thread i % threads); the figures
// do not depend on the thread count.
std::vector<GainStats> all_gain_stats(const std::vector<NormGains>& norms, double extreme_threshold,
                                      int threads) {
  std::vector<GainStats> stats(norms.size());
  size_t channels = 0;
  for (const auto& n : norms) channels += n.gains.size();
  const size_t workers = channels < kParallelStatsMin
                             ? 1
                             : std::clamp<size_t>(size_t(std::max(threads, 1)), 1, norms.size());
  auto run = [&](size_t first) {
    for (size_t i = first; i < norms.size(); i += workers)
      stats[i] = compute_gain_stats(norms[i].gains, extreme_threshold);
  };
  std::vector<std::jthread> pool;
  for (size_t w = 1; w < workers; ++w) pool.emplace_back(run, w);
  run(0);
  return stats;  // the jthreads join first
}

// Per role (e.g. every layer's k_norm): the largest gain over the layers, where it is, their
// median and how many layers hold an extreme gain.
void summarise_roles(Analysis& a,
                     const std::map<std::string, std::vector<const NormReport*>>& by_role) {
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
}

}  // namespace

Analysis analyze_gains(const ModelConfig& config, QkNormScope qk_scope,
                       const std::vector<NormGains>& norms, const NumericsProfile& kernels,
                       double extreme_threshold, const std::vector<KeyRows>& key_rows,
                       const KProjRead& k_proj, int threads) {
  Analysis a;
  a.k_proj = k_proj;
  std::vector<const KeyRows*> rows_of(size_t(config.num_layers));
  for (const auto& r : key_rows)
    if (r.layer >= 0 && r.layer < config.num_layers &&
        r.rms.size() == size_t(config.num_kv_heads * config.head_dim))
      rows_of[size_t(r.layer)] = &r;
  a.num_layers = config.num_layers;
  a.head_dim = config.head_dim;
  std::vector<const NormGains*> q_of(size_t(config.num_layers)), k_of(size_t(config.num_layers));
  std::map<std::string, std::vector<const NormReport*>> by_role;
  a.norms.reserve(norms.size());
  std::vector<GainStats> stats = all_gain_stats(norms, extreme_threshold, threads);
  for (size_t i = 0; i < norms.size(); ++i) {
    const NormGains& n = norms[i];
    a.norms.push_back({n.role, n.tensor, n.kind, n.layer, stats[i]});
    if (n.layer >= 0 && n.layer < config.num_layers) {
      if (n.kind == NormKind::kQ) q_of[size_t(n.layer)] = &n;
      if (n.kind == NormKind::kK) k_of[size_t(n.layer)] = &n;
    }
  }
  for (const auto& r : a.norms)
    if (r.layer >= 0) by_role[r.role].push_back(&r);

  double sum_sq = 0, key_sq = 0, round_sq = 0, acc_sq = 0;
  int64_t known = 0;
  const bool any_rows = std::any_of(rows_of.begin(), rows_of.end(), [](auto* r) { return r; });
  for (int64_t l = 0; l < config.num_layers; ++l) {
    a.layers.push_back(layer_noise(config, qk_scope, l, q_of[size_t(l)], k_of[size_t(l)], kernels));
    LayerReport& lr = a.layers.back();
    lr.key_noise = lr.noise;
    if (!lr.has_qk_norm && rows_of[size_t(l)]) {
      lr.key_noise = key_rows_noise(config, *rows_of[size_t(l)], kernels);
      lr.keys_from_k_proj = true;
    }
    a.rounding_amplification =
        std::max(a.rounding_amplification, lr.key_noise.rounding_amplification);
    a.cache_amplification = std::max(a.cache_amplification, lr.key_noise.cache_amplification);
    if (l == 0 || lr.key_noise.key_cache_loss > a.key_cache_loss ||
        std::isnan(lr.key_noise.key_cache_loss)) {
      a.key_cache_loss = lr.key_noise.key_cache_loss;
      a.key_loss_layer = l;
    }
    if (!any_rows || lr.keys_from_k_proj || lr.has_qk_norm) {
      key_sq += lr.key_noise.key_cache_loss * lr.key_noise.key_cache_loss;
      round_sq += lr.key_noise.rounding_amplification * lr.key_noise.rounding_amplification;
      ++known;
    }
    // The accumulator sums q.k with the norms' gains on both sides: read from `noise`.
    const double acc = lr.noise.accumulation_amplification;
    a.accumulation_amplification = std::max(a.accumulation_amplification, acc);
    acc_sq += acc * acc;
    const double amp = lr.noise.amplification;
    sum_sq += amp * amp;
    if (l == 0 || amp > a.amplification || std::isnan(amp)) {
      a.amplification = amp;
      a.worst_layer = l;
    }
  }
  a.cumulative_amplification = std::sqrt(sum_sq / double(std::max<int64_t>(1, config.num_layers)));
  const double depth = double(config.num_layers) / double(std::max<int64_t>(1, known));
  a.depth_key_loss = std::sqrt(key_sq * depth);
  a.depth_rounding_amplification = std::sqrt(round_sq * depth);
  a.depth_accumulation_amplification = std::sqrt(acc_sq);
  set_model_rounding(a, kBf16UnitRoundoff);

  summarise_roles(a, by_role);
  return a;
}

void set_model_rounding(Analysis& a, double model_unit_roundoff) {
  a.model_unit_roundoff = model_unit_roundoff;
  const double floor = model_unit_roundoff > 0 ? kBf16UnitRoundoff / model_unit_roundoff : 0;
  a.floor_key_loss = a.depth_key_loss * floor;
  a.floor_accumulation_loss = a.depth_accumulation_amplification * floor;
}

}  // namespace fusecheck
