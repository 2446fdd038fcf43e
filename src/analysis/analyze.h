// Static analysis of a model's norm gains (no I/O: the checker reads the tensors, this computes).
// Per norm tensor: GainStats. Per layer: the attention-logit noise its q/k norms imply under a
// kernel set (LogitNoise). Model-wide: the worst layer's amplification and the cumulative estimate.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/gain_stats.h"
#include "analysis/logit_noise.h"
#include "arch/arch_profile.h"
#include "io/model_config.h"
#include "kernels/numerics_profile.h"

namespace fusecheck {

// One norm tensor's effective gains, as read by the checker.
struct NormGains {
  std::string role;    // "k_norm"
  std::string tensor;  // full tensor name
  NormKind kind = NormKind::kBlock;
  int64_t layer = -1;        // -1 for model-wide norms (the final norm)
  std::vector<float> gains;  // effective gains (convention applied); [size per NormSpec]
};

struct NormReport {
  std::string role;
  std::string tensor;
  NormKind kind = NormKind::kBlock;
  int64_t layer = -1;
  GainStats stats;
};

struct LayerReport {
  int64_t layer = 0;
  bool has_qk_norm = false;  // false: unit q/k gains assumed (no per-head norm to amplify logits)
  int64_t worst_head = 0;  // head with the largest noise (differs only for whole-projection norms)
  LogitNoise noise;
};

// Summary of one role's layer maxima across layers: the layer-wise distribution.
struct RoleSummary {
  std::string role;
  int64_t layers = 0;
  double max_of_max = 0;  // largest max|g| over layers
  int64_t max_layer = -1;
  double median_of_max = 0;  // median over layers of max|g|
  int64_t layers_above_extreme = 0;
};

struct Analysis {
  int64_t num_layers = 0;
  int64_t head_dim = 0;
  std::vector<NormReport> norms;    // every norm tensor, in layer order
  std::vector<LayerReport> layers;  // one per layer
  std::vector<RoleSummary> roles;
  double amplification = 0;  // max over layers of the per-layer amplification
  int64_t worst_layer = 0;
  // Independent per-layer logit errors add in variance along the residual stream:
  // sqrt(mean_l a_l^2), the RMS of per-layer amplifications.
  double cumulative_amplification = 0;
};

Analysis analyze_gains(const ModelConfig& config, QkNormScope qk_scope,
                       const std::vector<NormGains>& norms, const NumericsProfile& kernels,
                       double extreme_threshold);

}  // namespace fusecheck
