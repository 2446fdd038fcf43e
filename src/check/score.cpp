#include "check/score.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace fusecheck {

std::string_view verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kCompatible:
      return "COMPATIBLE";
    case Verdict::kWarning:
      return "WARNING";
    case Verdict::kIncompatible:
      return "INCOMPATIBLE";
  }
  return "?";
}

Verdict verdict_for_score(double score, const Thresholds& t) {
  if (score >= t.compatible_score) return Verdict::kCompatible;
  if (score >= t.warning_score) return Verdict::kWarning;
  return Verdict::kIncompatible;
}

double component_score(double metric, double threshold) {
  if (std::isnan(metric)) return 0;
  if (metric <= threshold) return 1;
  return std::max(0.0, 1.0 - std::log2(metric / threshold));
}

bool is_reference_numerics(const NumericsProfile& k) {
  return k.activation_unit_roundoff == 0 && k.kv_format == KvFormat::kSame &&
         k.accumulation_unit_roundoff == 0;
}

namespace {
bool scored(NormKind k) {
  return k == NormKind::kQ || k == NormKind::kK;
}

std::string where(int64_t layer) {
  return layer >= 0 ? fmt::format("Layer {}", layer) : std::string("Model");
}

// What the scored (q/k) norms add up to, for the components.
struct NormSummary {
  double worst_ratio = 0, worst_cv = 0;
  int64_t extreme_layers = 0;
  bool any_scored = false;
};

// Hard findings of every norm (NaN/Inf, negative and zero-median gains), notes on block norms, and
// the maxima of the scored norms.
NormSummary summarize_norms(const Analysis& a, const Thresholds& t, Score& s) {
  NormSummary out;
  std::vector<bool> extreme_layer(size_t(a.num_layers), false);
  for (const auto& n : a.norms) {
    const GainStats& g = n.stats;
    // Hard findings apply to every norm: a NaN gain poisons every activation after it.
    if (g.n_nan || g.n_inf)
      s.findings.push_back({"error", n.layer,
                            fmt::format("{} {}: {} NaN and {} Inf gains in {}", where(n.layer),
                                        n.role, g.n_nan, g.n_inf, n.tensor)});
    if (g.n_negative)
      s.findings.push_back({"warning", n.layer,
                            fmt::format("{} {}: {} negative effective gains (min {:.4g}); trained "
                                        "norms are positive, so the checkpoint may be corrupt",
                                        where(n.layer), n.role, g.n_negative, g.min)});
    if (g.median_abs == 0 && g.n > 0)
      s.findings.push_back({"warning", n.layer,
                            fmt::format("{} {}: median gain is 0, so the max/median ratio is "
                                        "undefined (most channels are switched off)",
                                        where(n.layer), n.role)});
    if (!scored(n.kind)) {
      if (g.ratio > t.max_safe_weight_ratio || g.max_abs > t.extreme_weight_threshold)
        s.findings.push_back({"note", n.layer,
                              fmt::format("{} {}: max gain {:.2f} (max/median {:.1f}); not scored: "
                                          "block norms feed linear layers, whose relative error a "
                                          "gain does not change",
                                          where(n.layer), n.role, g.max_abs, g.ratio)});
      continue;
    }
    out.any_scored = true;
    out.worst_ratio = std::max(out.worst_ratio, g.ratio);
    out.worst_cv = std::max(out.worst_cv, g.cv);
    if (n.layer >= 0 && n.layer < a.num_layers && g.count_above_extreme > 0)
      extreme_layer[size_t(n.layer)] = true;
  }
  for (bool e : extreme_layer) out.extreme_layers += e;
  return out;
}

// The four weighted components and their total (the original max-gain screen).
void score_components(const Analysis& a, const Thresholds& t, const NormSummary& n, Score& s) {
  const ScoreWeights& w = t.weights;
  s.components = {
      {"weight_ratio", n.worst_ratio, t.max_safe_weight_ratio,
       component_score(n.worst_ratio, t.max_safe_weight_ratio), w.weight_ratio},
      {"amplification", a.amplification, t.max_safe_amplification,
       component_score(a.amplification, t.max_safe_amplification), w.amplification},
      {"extreme_layers", double(n.extreme_layers), 0,
       1.0 - double(n.extreme_layers) / double(std::max<int64_t>(1, a.num_layers)),
       w.extreme_layers},
      {"variance", n.worst_cv, t.max_safe_gain_cv, component_score(n.worst_cv, t.max_safe_gain_cv),
       w.variance},
  };
  s.total = 0;
  for (const auto& c : s.components) s.total += c.weight * c.score;
}

// One issue line per layer with a scored norm or its logit noise over a threshold; fp16 overflow
// risks become errors.
void layer_issues(const Analysis& a, const Thresholds& t, Score& s) {
  for (int64_t l = 0; l < a.num_layers; ++l) {
    std::vector<std::string> parts;
    for (const auto& n : a.norms) {
      if (n.layer != l || !scored(n.kind)) continue;
      const GainStats& g = n.stats;
      const bool over_ratio = g.ratio > t.max_safe_weight_ratio;
      if (over_ratio || g.count_above_extreme > 0)
        parts.push_back(fmt::format(
            "{} max gain {:.2f} (max/median {:.1f}{}; {} channel{} > {:g})", n.role, g.max_abs,
            g.ratio, over_ratio ? fmt::format(" > {:g}", t.max_safe_weight_ratio) : "",
            g.count_above_extreme, g.count_above_extreme == 1 ? "" : "s",
            t.extreme_weight_threshold));
    }
    const LayerReport& lr = a.layers[size_t(l)];
    if (lr.noise.amplification > t.max_safe_amplification)
      parts.push_back(fmt::format("logit-noise amplification {:.1f}x > {:g}",
                                  lr.noise.amplification, t.max_safe_amplification));
    if (lr.noise.fp16_overflow_risk)
      s.findings.push_back(
          {"error", l,
           fmt::format("Layer {}: keys or q.k partial sums may exceed fp16's 65504 "
                       "(estimated |k| {:.0f}, partial sum {:.0f})",
                       l, lr.noise.max_key_estimate, lr.noise.max_logit_sum_estimate)});
    if (!parts.empty()) {
      std::string line = fmt::format("Layer {}: ", l);
      for (size_t i = 0; i < parts.size(); ++i) line += (i ? "; " : "") + parts[i];
      s.issues.push_back(line);
    }
  }
}

// The score's verdict, raised by the findings. Returns whether an error finding was raised.
bool verdict_from_findings(const Thresholds& t, Score& s) {
  s.verdict = verdict_for_score(s.total, t);
  bool has_error = false, has_warning = false;
  for (const auto& f : s.findings) {
    has_error |= f.severity == "error";
    has_warning |= f.severity == "warning";
  }
  if (has_error)
    s.verdict = Verdict::kIncompatible;
  else if (has_warning && s.verdict == Verdict::kCompatible)
    s.verdict = Verdict::kWarning;
  return has_error;
}

// A figure over a rule's limit (NaN counts as over: a NaN figure cannot clear anything).
bool over(double figure, double limit) {
  return limit > 0 && (figure > limit || std::isnan(figure));
}

// The key-cache loss rules of apply_profile_rules: per layer, accumulated over depth, and against
// the model dtype's own rounding. finding(verdict, layer, message) records one.
template <class Finding>
void apply_key_loss_rules(const Analysis& a, const NumericsProfile& kernels, Finding&& finding) {
  const StaticRules& rules = kernels.static_rules;
  const char* keys_from = a.layers.empty() || !a.layers[size_t(a.key_loss_layer)].keys_from_k_proj
                              ? "q/k norm gains"
                              : "k_proj rows";
  if (over(a.key_cache_loss, rules.incompatible_above_key_loss))
    finding(
        Verdict::kIncompatible, a.key_loss_layer,
        fmt::format("Key-cache loss {:.1f}x (from {}) exceeds {:g}, above which profile "
                    "\"{}\" was measured to break models",
                    a.key_cache_loss, keys_from, rules.incompatible_above_key_loss, kernels.name));
  else if (over(a.key_cache_loss, rules.warning_above_key_loss))
    finding(Verdict::kWarning, a.key_loss_layer,
            fmt::format("Key-cache loss {:.1f}x (from {}) exceeds {:g}, where profile \"{}\" "
                        "starts to be measured incompatible",
                        a.key_cache_loss, keys_from, rules.warning_above_key_loss, kernels.name));
  if (over(a.depth_key_loss, rules.incompatible_above_depth_key_loss))
    finding(Verdict::kIncompatible, a.key_loss_layer,
            fmt::format("Key-cache loss accumulated over {} layers {:.1f} (from {}) exceeds {:g}, "
                        "above which profile \"{}\" was measured to break models",
                        a.num_layers, a.depth_key_loss, keys_from,
                        rules.incompatible_above_depth_key_loss, kernels.name));
  else if (over(a.depth_key_loss, rules.warning_above_depth_key_loss))
    finding(Verdict::kWarning, a.key_loss_layer,
            fmt::format("Key-cache loss accumulated over {} layers {:.1f} (from {}) exceeds {:g}, "
                        "where profile \"{}\" starts to be measured incompatible",
                        a.num_layers, a.depth_key_loss, keys_from,
                        rules.warning_above_depth_key_loss, kernels.name));
  if (over(a.floor_key_loss, rules.warning_above_floor_key_loss))
    finding(Verdict::kWarning, a.key_loss_layer,
            fmt::format("Key-cache loss accumulated over {} layers against the standard path's "
                        "own rounding at the model's dtype (unit roundoff {:.3g}) {:.1f} (from {}) "
                        "exceeds {:g}, where profile \"{}\" starts to be measured incompatible",
                        a.num_layers, a.model_unit_roundoff, a.floor_key_loss, keys_from,
                        rules.warning_above_floor_key_loss, kernels.name));
}

// The profile's measured rules (data/kernels.json static_rules, fitted in docs/VALIDATION.md).
void apply_profile_rules(const Analysis& a, const NumericsProfile& kernels, bool any_scored,
                         Score& s) {
  const StaticRules& rules = kernels.static_rules;
  const auto at_least = [&](Verdict v) { s.verdict = std::max(s.verdict, v); };
  const auto finding = [&](Verdict v, int64_t layer, std::string message) {
    at_least(v);
    s.findings.push_back({v == Verdict::kIncompatible ? "error" : "warning", layer,
                          std::move(message) + " (docs/VALIDATION.md)"});
  };
  // The cap applies to the score's verdict; the profile's fitted rules below may still raise it.
  if (int(s.verdict) > rules.worst) {
    s.verdict = Verdict(rules.worst);
    s.findings.push_back(
        {"note", a.worst_layer,
         fmt::format(
             "Profile \"{}\": the score alone was not a measured predictor (docs/VALIDATION.md), "
             "so it gives at most {}; the profile's fitted rules decide",
             kernels.name, verdict_name(s.verdict))});
  }
  if (over(a.amplification, rules.incompatible_above_amplification))
    finding(Verdict::kIncompatible, a.worst_layer,
            fmt::format("Predicted logit-noise amplification {:.1f}x exceeds {:g}, above which "
                        "profile \"{}\" was measured to break models",
                        a.amplification, rules.incompatible_above_amplification, kernels.name));
  else if (over(a.amplification, rules.warning_above_amplification))
    finding(Verdict::kWarning, a.worst_layer,
            fmt::format("Predicted logit-noise amplification {:.1f}x exceeds {:g}, where profile "
                        "\"{}\" starts to be measured incompatible",
                        a.amplification, rules.warning_above_amplification, kernels.name));
  apply_key_loss_rules(a, kernels, finding);
  if (over(a.floor_accumulation_loss, rules.warning_above_floor_accumulation))
    finding(Verdict::kWarning, a.worst_layer,
            fmt::format("The narrow attention accumulator's noise accumulated over {} layers "
                        "against the standard path's own rounding at the model's dtype (unit "
                        "roundoff {:.3g}) {:.1f} exceeds {:g}, where profile \"{}\" starts to be "
                        "measured incompatible",
                        a.num_layers, a.model_unit_roundoff, a.floor_accumulation_loss,
                        rules.warning_above_floor_accumulation, kernels.name));
  if (over(a.rounding_amplification, rules.warning_above_rounding))
    finding(Verdict::kWarning, a.worst_layer,
            fmt::format("The model's own bf16 rounding noise is {:.1f}x the unit-gain floor (over "
                        "{:g}): profile \"{}\"'s small additions were measured to exceed the "
                        "budget on such models",
                        a.rounding_amplification, rules.warning_above_rounding, kernels.name));
  if (!any_scored && a.k_proj.layers_read == 0 && rules.best_without_qk_norm > 0)
    finding(Verdict(rules.best_without_qk_norm), -1,
            fmt::format("Without q/k norms, and with k_proj not read ({}), the check cannot see "
                        "key-channel outliers, which profile \"{}\" is sensitive to; measure with "
                        "fusecheck probe",
                        a.k_proj.note.empty() ? "no reason given" : a.k_proj.note, kernels.name));
}

// What to do, in words, for the verdict.
void add_recommendations(const Analysis& a, const NumericsProfile& kernels, bool any_scored,
                         Score& s) {
  if (!any_scored)
    s.recommendations.push_back(
        a.k_proj.layers_read > 0
            ? fmt::format("This architecture has no per-head q/k norms; key magnitudes were read "
                          "from k_proj's rows ({} of {} layers, {} bytes), query gains assumed 1.",
                          a.k_proj.layers_read, a.k_proj.layers, a.k_proj.bytes_read)
            : std::string("This architecture has no per-head q/k norms; the logit-noise estimate "
                          "assumes unit q/k gains."));
  switch (s.verdict) {
    case Verdict::kCompatible:
      s.recommendations.push_back(fmt::format(
          "Fused kernels (profile \"{}\") are expected to be safe for this model.", kernels.name));
      break;
    case Verdict::kWarning:
      s.recommendations.push_back(
          "Fused kernels may change this model's outputs measurably. Measure before deploying "
          "(fusecheck probe), and avoid lossy (int8/fp8) KV caches.");
      break;
    case Verdict::kIncompatible:
      s.recommendations.push_back(
          "Use standard (unfused) kernels for this model. If you must fuse, keep the q/k-norm and "
          "RoPE steps unfused in the layers listed above, keep a bf16 KV cache, and measure the "
          "result with fusecheck probe.");
      break;
  }
  if ((kernels.kv_format == KvFormat::kInt8 || kernels.kv_format == KvFormat::kFp8E4M3) &&
      s.verdict != Verdict::kCompatible)
    s.recommendations.push_back(
        "The lossy KV cache of this kernel profile is a large part of the estimated noise; a "
        "bf16 or fp16 cache removes it.");
}

}  // namespace

Score score_analysis(const Analysis& a, const Thresholds& t, const NumericsProfile& kernels) {
  Score s;
  const NormSummary norms = summarize_norms(a, t, s);
  score_components(a, t, norms, s);
  layer_issues(a, t, s);
  const bool has_error = verdict_from_findings(t, s);
  if (!has_error) apply_profile_rules(a, kernels, norms.any_scored, s);
  if (is_reference_numerics(kernels) && !has_error) {
    s.verdict = Verdict::kCompatible;
    s.recommendations.push_back(fmt::format(
        "Kernel profile \"{}\" moves no rounding point: it is the reference the check compares "
        "against, so it is compatible by construction. The statistics are shown for information.",
        kernels.name));
    return s;
  }
  add_recommendations(a, kernels, norms.any_scored, s);
  return s;
}

}  // namespace fusecheck
