// Scoring: four components in [0, 1], weighted, summed, mapped to a verdict;
// plus the per-layer issues, hard findings (NaN/Inf/negative gains, overflow) and recommendations.
//
// Only attention-logit norms (kind q/k) are scored: their gains multiply q.k directly, so they set
// how far a moved rounding point moves the softmax. Block norms feed linear layers, whose relative
// error a gain does not change; they are reported (and flagged as notes) but not scored.
#pragma once

#include <string>
#include <vector>

#include "analysis/analyze.h"
#include "check/thresholds.h"
#include "kernels/numerics_profile.h"

namespace fusecheck {

enum class Verdict { kCompatible = 0, kWarning = 1, kIncompatible = 2 };  // = exit codes
std::string_view verdict_name(Verdict v);                                 // "COMPATIBLE", ...
Verdict verdict_for_score(double score, const Thresholds& t);

struct ScoreComponent {
  std::string name;      // weight_ratio | amplification | extreme_layers | variance
  double metric = 0;     // the measured value
  double threshold = 0;  // its safe limit
  double score = 1;      // in [0, 1]
  double weight = 0;
};

struct Finding {
  std::string severity;  // "error" (forces INCOMPATIBLE), "warning" (at least WARNING), "note"
  int64_t layer = -1;    // -1: model-wide
  std::string message;
};

struct Score {
  double total = 1;
  Verdict verdict = Verdict::kCompatible;
  std::vector<ScoreComponent> components;
  std::vector<std::string> issues;  // one line per layer over a threshold (the report's list)
  std::vector<Finding> findings;
  std::vector<std::string> recommendations;
};

// 1 at or below the threshold, then falls by 1 per doubling above it: 0 at twice the threshold.
double component_score(double metric, double threshold);

// True when the kernel set moves no rounding point (the standard path): nothing to judge.
bool is_reference_numerics(const NumericsProfile& k);

Score score_analysis(const Analysis& a, const Thresholds& t, const NumericsProfile& kernels);

}  // namespace fusecheck
