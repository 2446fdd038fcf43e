// The empirical probe: runs a model on the fp32 reference, the standard kernels and a fused kernel
// profile over calibration sequences and measures how far each path moves, layer by layer and at
// the logits. Its verdict is the ground truth the static check's prediction is judged against
// (docs/VALIDATION.md).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "check/score.h"
#include "kernels/numerics_profile.h"
#include "model/model.h"
#include "util/result.h"

namespace fusecheck {

constexpr int kProbeRevision = 2;  // bumped when measurements or the verdict rule change

struct ProbeCriteria {
  // Lossless profiles: KL(fused || fp32) within kl_factor of the standard path's own KL from fp32
  // (the bf16 noise floor; kl_floor keeps an fp32 checkpoint's zero floor meaningful), and top-1
  // agreement with fp32 no worse than the standard path's by more than top1_margin (or two
  // standard errors of the two paths' pooled rate, when that is larger).
  double kl_factor = 2.0;
  double kl_floor = 1e-6;
  double top1_margin = 0.01;
  // Lossy profiles (narrower KV cache or accumulator): an absolute budget, about where Q8_0 weight
  // quantisation sits, on what the profile adds beyond the standard path's own divergence from
  // fp32: mean KL may grow by lossy_kl_budget, top-1 agreement with fp32 may drop by
  // 1 - lossy_top1_min (or two standard errors, when larger).
  double lossy_kl_budget = 1e-3;
  double lossy_top1_min = 0.98;
};

struct ProbeOptions {
  NumericsProfile profile;  // the fused kernel profile to measure
  // A per-layer plan (src/plan) to measure instead of the profile's uniform one. A plan is judged
  // by the lossy rule (criteria.lossy_*: the plan's absolute budget), whatever it fuses.
  std::optional<KernelPlan> plan;
  // The projections' dot product on the standard and the fused path (--dot); the fp32 reference
  // always runs the contract. kBf16Pairs measures what the opt-in choice costs against fp32.
  DotChoice dot = DotChoice::kContract;
  std::vector<std::vector<int32_t>> inputs;  // calibration sequences (see calibration_inputs)
  int64_t greedy_tokens = 32;                // generated to find the first divergence
  ProbeCriteria criteria;
  // Progress in [0, 1] with the stage's name; called from the probing thread.
  std::function<void(double, const std::string&)> progress;
};

// KL divergence and agreement of one path's next-token distributions against another's.
struct PairStats {
  double kl_mean = 0, kl_p99 = 0, kl_max = 0;  // KL(reference || path) per position, nats
  double top1 = 0;                             // fraction of positions with the same argmax
  double rms_dp = 0;  // RMS over positions of p_path(t) - p_ref(t), t = the reference's top token
};

// Relative error ||h - h_fp32|| / ||h_fp32|| of a layer's output over all positions.
struct LayerError {
  double standard = 0, fused = 0;                // propagated: each path runs on its own outputs
  double standard_shadow = 0, fused_shadow = 0;  // shadow: the layer gets the reference's input
};

struct ProbeResult {
  std::string profile;
  bool lossy = false;
  int64_t sequences = 0, positions = 0;
  PairStats standard_vs_fp32, fused_vs_fp32, fused_vs_standard;
  std::vector<LayerError> layers;
  int64_t greedy_tokens = 0;
  int64_t greedy_divergence = -1;  // first generated position where fused != standard; -1: none
  Verdict verdict = Verdict::kCompatible;  // kCompatible or kIncompatible
  std::string reason;                      // one line: the numbers the verdict rests on
  double seconds = 0;
};

// Calibration input: with a tokenizer (tokenizer.json in the model directory), the built-in texts
// (or `prompts`, one per line) encoded; without one, seeded pseudo-random token sequences. Each is
// cut to `tokens` tokens.
Result<std::vector<std::vector<int32_t>>> calibration_inputs(const Model& m, int64_t tokens,
                                                             const std::string& prompts_file);

Result<ProbeResult> run_probe(const Model& m, const ProbeOptions& opt);

// The per-layer plan search's view of the probe (src/plan): the fp32 reference and the standard
// path run once per sequence, then any number of kernel plans measured against that one
// reference, exactly as run_probe measures its fused path.
struct ProbeBaseline {
  struct Sequence {
    std::vector<int32_t> ids;
    std::vector<float> ref_logits, std_logits;  // [T, vocab]
    ForwardTrace ref_trace;                     // the reference's per-layer inputs and outputs
  };
  std::vector<Sequence> seqs;
  PairStats standard_vs_fp32;
  int64_t positions = 0;
};
Result<ProbeBaseline> probe_baseline(const Model& m,
                                     const std::vector<std::vector<int32_t>>& inputs);

struct PlanStats {
  PairStats fused_vs_fp32, fused_vs_standard;
  double added_kl = 0;   // fused_vs_fp32.kl_mean - standard_vs_fp32.kl_mean (the lossy rule's)
  double top1_loss = 0;  // standard_vs_fp32.top1 - fused_vs_fp32.top1 (a fraction)
};
Result<PlanStats> measure_plan(const Model& m, const ProbeBaseline& b, const KernelPlan& plan);
// Shadow error of layer l under `plan`: the layer alone on the reference's input, ||h - h_fp32|| /
// ||h_fp32|| over every sequence (the probe's LayerError::fused_shadow for one layer).
Result<double> layer_shadow_error(const Model& m, const ProbeBaseline& b, const KernelPlan& plan,
                                  int64_t layer);

// The verdict rule applied to measured statistics (exposed for tests and docs/VALIDATION.md).
void decide_probe_verdict(ProbeResult& r, const ProbeCriteria& c);

}  // namespace fusecheck
