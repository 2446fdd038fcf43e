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

// Key-channel magnitudes of one layer read from k_proj's rows, for models without q/k norms
// (src/check/key_rows.h reads them): the RMS of each key channel, sqrt(sum_j (W[c,j] g_in[j])^2)
// over the hidden inputs j (input_layernorm gains g_in), divided by its kv head's RMS so a head
// has unit RMS as after a per-head norm. [num_kv_heads * head_dim]
struct KeyRows {
  int64_t layer = 0;
  std::vector<float> rms;
};

// What the check read of k_proj, said in the report.
struct KProjRead {
  std::string tensor;       // name template, "" when the architecture has no k_proj to read
  int64_t layers_read = 0;  // layers whose k_proj rows were read (evenly spaced within budget)
  int64_t layers = 0;       // layers in the model
  uint64_t bytes_read = 0;  // k_proj bytes read
  std::string note;         // why nothing (or not every layer) was read
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
  // The noise with key gains from k_proj's rows (unit q gains), where they were read; otherwise a
  // copy of `noise`. Read by the profile rules (key_cache_loss), not by the score.
  bool keys_from_k_proj = false;
  LogitNoise key_noise;
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
  // Maxima over layers of the separate terms (LogitNoise), from key_noise (k_proj rows where read).
  double rounding_amplification = 0;
  double cache_amplification = 0;
  double key_cache_loss = 0;
  int64_t key_loss_layer = 0;
  // Accumulated over depth: each layer's cache error perturbs the residual stream independently,
  // so their variances add: sqrt(L * mean_l key_cache_loss_l^2), the mean taken over the layers
  // whose keys are known (k_proj rows read; all layers otherwise). The measured KL a lossy cache
  // adds grows with depth at the same gains (docs/VALIDATION.md), which the per-layer maximum
  // cannot show. The same for the bf16 rounding term.
  double depth_key_loss = 0;
  double depth_rounding_amplification = 0;
  // The unit roundoff of the standard path's activations, the checkpoint's weight dtype (bf16
  // 2^-8, f16 2^-11, f32 2^-24): the floor that the probe subtracts before it charges a lossy
  // profile anything (docs/ANALYSIS.md, section 4.14).
  double model_unit_roundoff = kBf16UnitRoundoff;
  // depth_key_loss * 2^-8 / model_unit_roundoff: the cache's key loss measured against the
  // rounding the standard path already does at the model's own dtype rather than at bf16. Equal
  // to depth_key_loss for bf16 checkpoints; 8x for f16, whose finer floor hides less.
  double floor_key_loss = 0;
  // A narrow (fp16) attention accumulator's term (3) of LogitNoise, from the q/k norm gains: its
  // maximum over layers, accumulated over depth as above (each layer's partial sums round
  // independently, so variances add: sqrt(L * mean_l a_l^2)), and that depth figure against the
  // standard path's floor at the model's dtype (times 2^-8 / model_unit_roundoff, as
  // floor_key_loss): an fp16 accumulator rounds at 2^-11, which a bf16 checkpoint's own rounding
  // hides and an f16 checkpoint's does not (docs/ANALYSIS.md, section 4.15). 0 without one.
  double accumulation_amplification = 0;
  double depth_accumulation_amplification = 0;
  double floor_accumulation_loss = 0;
  KProjRead k_proj;
};

// Sets model_unit_roundoff, floor_key_loss and floor_accumulation_loss from the standard path's
// unit roundoff (> 0).
void set_model_rounding(Analysis& a, double model_unit_roundoff);

// key_rows: per-layer k_proj key magnitudes (may be empty or cover some layers only); used only
// for layers without q/k norms. k_proj: what was read, copied into the result. threads: how many
// threads compute the norms' statistics when there are many channels (the result does not depend
// on it).
Analysis analyze_gains(const ModelConfig& config, QkNormScope qk_scope,
                       const std::vector<NormGains>& norms, const NumericsProfile& kernels,
                       double extreme_threshold, const std::vector<KeyRows>& key_rows = {},
                       const KProjRead& k_proj = {}, int threads = 1);

}  // namespace fusecheck
