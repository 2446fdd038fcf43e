#include "check/result_json.h"

#include <cmath>
#include <limits>

#include "check/result_json_enums.h"

namespace nlohmann {
// JSON has no Inf/NaN; a zero median makes a ratio infinite, a NaN gain makes statistics NaN.
template <>
struct adl_serializer<double> {
  static void to_json(json& j, double v) {
    if (std::isfinite(v)) {
      j = json(json::value_t::number_float);
      *j.get_ptr<json::number_float_t*>() = v;
    } else {
      j = std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
    }
  }
  static void from_json(const json& j, double& v) {
    if (j.is_number_float())
      v = *j.get_ptr<const json::number_float_t*>();
    else if (j.is_number_integer())
      v = double(*j.get_ptr<const json::number_integer_t*>());
    else if (j.is_number_unsigned())
      v = double(*j.get_ptr<const json::number_unsigned_t*>());
    else if (j == "inf")
      v = std::numeric_limits<double>::infinity();
    else if (j == "-inf")
      v = -std::numeric_limits<double>::infinity();
    else if (j == "nan")
      v = std::numeric_limits<double>::quiet_NaN();
    else
      throw json::type_error::create(302, "expected a number", &j);
  }
};
}  // namespace nlohmann

namespace fusecheck {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RopeConfig, theta, type, factor, low_freq_factor,
                                   high_freq_factor, original_max_position_embeddings)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ModelConfig, model_type, architecture, hidden_size, num_layers,
                                   num_heads, num_kv_heads, head_dim, intermediate_size, vocab_size,
                                   max_position_embeddings, rms_norm_eps, tie_word_embeddings,
                                   attention_bias, rope, num_experts, num_experts_per_tok,
                                   moe_intermediate_size, torch_dtype)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(StaticRules, incompatible_above_amplification,
                                   warning_above_amplification, incompatible_above_key_loss,
                                   warning_above_key_loss, incompatible_above_depth_key_loss,
                                   warning_above_depth_key_loss, warning_above_floor_key_loss,
                                   warning_above_rounding, warning_above_floor_accumulation,
                                   best_without_qk_norm, worst)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(NumericsProfile, name, description, activation_unit_roundoff,
                                   kv_format, kv_scale, accumulation_unit_roundoff, fusion,
                                   static_rules)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ScoreWeights, weight_ratio, amplification, extreme_layers,
                                   variance)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Thresholds, max_safe_weight_ratio, max_safe_amplification,
                                   extreme_weight_threshold, max_safe_gain_cv, weights,
                                   compatible_score, warning_score)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(GainStats, n, max_abs, median_abs, ratio, mean_abs, variance, cv,
                                   min, p01, p05, p25, p75, p95, p99, count_above_extreme, n_nan,
                                   n_inf, n_negative, n_subnormal, argmax)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(NormReport, role, tensor, kind, layer, stats)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(LogitNoise, amplification, sigma, pair_gain_product,
                                   max_key_estimate, max_logit_sum_estimate, fp16_overflow_risk,
                                   rounding_amplification, cache_amplification,
                                   accumulation_amplification, key_cache_loss)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(LayerReport, layer, has_qk_norm, worst_head, noise,
                                   keys_from_k_proj, key_noise)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(KProjRead, tensor, layers_read, layers, bytes_read, note)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RoleSummary, role, layers, max_of_max, max_layer, median_of_max,
                                   layers_above_extreme)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Analysis, num_layers, head_dim, norms, layers, roles,
                                   amplification, worst_layer, cumulative_amplification,
                                   rounding_amplification, cache_amplification, key_cache_loss,
                                   key_loss_layer, depth_key_loss, depth_rounding_amplification,
                                   model_unit_roundoff, floor_key_loss, accumulation_amplification,
                                   depth_accumulation_amplification, floor_accumulation_loss,
                                   k_proj)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ScoreComponent, name, metric, threshold, score, weight)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Finding, severity, layer, message)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Score, total, verdict, components, issues, findings,
                                   recommendations)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CheckResult, schema, checker_version, model_path, architecture,
                                   model_type, gain_convention, config, kernels, thresholds,
                                   analysis, score, verdict, overridden, from_cache, fingerprint,
                                   cache_note)

nlohmann::json result_to_json(const CheckResult& r) {
  return r;
}
nlohmann::json thresholds_to_json(const Thresholds& t) {
  return t;
}
nlohmann::json numerics_to_json(const NumericsProfile& k) {
  return k;
}

Result<CheckResult> result_from_json(const nlohmann::json& j) {
  try {
    return j.get<CheckResult>();
  } catch (const nlohmann::json::exception& e) {
    return make_error("report does not match the schema: {}", e.what());
  }
}

}  // namespace fusecheck
