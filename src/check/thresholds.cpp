#include "check/thresholds.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "util/atomic_file.h"
#include "util/embedded.h"
#include "util/known_keys.h"

namespace fusecheck {

using json = nlohmann::json;

namespace {
Status read_number(const json& j, const char* key, double& out, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end()) return ok_status();
  if (!it->is_number() || !std::isfinite(it->get<double>()))
    return make_error("{}: \"{}\" must be a finite number, found {}", source, key, it->dump());
  out = it->get<double>();
  return ok_status();
}
}  // namespace

Result<Thresholds> apply_thresholds_json(const Thresholds& base, std::string_view text,
                                         const std::string& source) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("{}: expected a JSON object", source);
  FC_TRY(json_known_keys(
      j,
      {"max_safe_weight_ratio", "max_safe_amplification", "extreme_weight_threshold",
       "max_safe_gain_cv", "compatible_score", "warning_score", "weights"},
      source));
  Thresholds t = base;
  FC_TRY(read_number(j, "max_safe_weight_ratio", t.max_safe_weight_ratio, source));
  FC_TRY(read_number(j, "max_safe_amplification", t.max_safe_amplification, source));
  FC_TRY(read_number(j, "extreme_weight_threshold", t.extreme_weight_threshold, source));
  FC_TRY(read_number(j, "max_safe_gain_cv", t.max_safe_gain_cv, source));
  FC_TRY(read_number(j, "compatible_score", t.compatible_score, source));
  FC_TRY(read_number(j, "warning_score", t.warning_score, source));
  if (auto w = j.find("weights"); w != j.end()) {
    if (!w->is_object()) return make_error("{}: \"weights\" must be an object", source);
    FC_TRY(json_known_keys(*w, {"weight_ratio", "amplification", "extreme_layers", "variance"},
                           source + ": \"weights\""));
    FC_TRY(read_number(*w, "weight_ratio", t.weights.weight_ratio, source));
    FC_TRY(read_number(*w, "amplification", t.weights.amplification, source));
    FC_TRY(read_number(*w, "extreme_layers", t.weights.extreme_layers, source));
    FC_TRY(read_number(*w, "variance", t.weights.variance, source));
  }
  FC_TRY(validate_thresholds(t, source));
  return t;
}

Status validate_thresholds(const Thresholds& t, const std::string& source) {
  if (!(t.max_safe_weight_ratio > 1 && t.max_safe_amplification > 0 &&
        t.extreme_weight_threshold > 0 && t.max_safe_gain_cv > 0))
    return make_error("{}: thresholds must be positive (max_safe_weight_ratio above 1)", source);
  const ScoreWeights& w = t.weights;
  if (w.weight_ratio < 0 || w.amplification < 0 || w.extreme_layers < 0 || w.variance < 0)
    return make_error("{}: score weights must be non-negative", source);
  double sum = w.weight_ratio + w.amplification + w.extreme_layers + w.variance;
  if (std::fabs(sum - 1.0) > 1e-6)
    return make_error("{}: score weights must sum to 1, found {}", source, sum);
  if (!(t.warning_score >= 0 && t.warning_score <= t.compatible_score && t.compatible_score <= 1))
    return make_error("{}: need 0 <= warning_score <= compatible_score <= 1", source);
  return ok_status();
}

Result<Thresholds> load_thresholds(const std::string& file) {
  FC_ASSIGN(t, apply_thresholds_json(Thresholds{}, embedded_data("thresholds.json"),
                                     "built-in thresholds.json"));
  if (file.empty()) return t;
  FC_ASSIGN(text, read_small_file(file, kMaxConfigBytes));
  return apply_thresholds_json(t, text, file);
}

}  // namespace fusecheck
