// Thresholds and score weights of the static check (data/thresholds.json holds the defaults; a
// --thresholds FILE and flags override them key by key). docs/ANALYSIS.md derives each number.
#pragma once

#include <string>

#include "util/result.h"

namespace fusecheck {

struct ScoreWeights {
  double weight_ratio = 0.4;
  double amplification = 0.3;
  double extreme_layers = 0.2;
  double variance = 0.1;
};

struct Thresholds {
  double max_safe_weight_ratio = 20;     // max/median of a q/k norm's gains
  double max_safe_amplification = 10;    // logit-noise amplification of the worst layer
  double extreme_weight_threshold = 10;  // a gain above this makes its layer "extreme"
  double max_safe_gain_cv = 2;           // std/median of a q/k norm's gains
  ScoreWeights weights;
  double compatible_score = 0.8;  // score >= this: COMPATIBLE
  double warning_score = 0.5;     // score >= this: WARNING, else INCOMPATIBLE
};

// Applies the keys present in `json_text` on top of `base`; validates the result.
Result<Thresholds> apply_thresholds_json(const Thresholds& base, std::string_view json_text,
                                         const std::string& source);
// The built-in defaults, then `file` when non-empty.
Result<Thresholds> load_thresholds(const std::string& file);
Status validate_thresholds(const Thresholds& t, const std::string& source);

}  // namespace fusecheck
