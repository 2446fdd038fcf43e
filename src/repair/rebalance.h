// `fusecheck rebalance`: a function-preserving rescaling of a checkpoint that moves large gains out
// of what lossy KV caches store (docs/TRAINING_GUIDANCE.md, docs/ANALYSIS.md).
//
// Keys. The attention logit of query head h and key head g = h / (nh / nkv) is
// sum_i q_i k_i after RoPE, and RoPE rotates channel i with i + hd/2 (rotate_half layout), a linear
// map on each pair. Scaling both key channels of pair i by s_{g,i} > 0 and the matching query
// channels of every query head that reads kv head g by 1 / s_{g,i} leaves every logit unchanged.
// With q/k norms (Qwen3) the scale goes into the gains; they are one [hd] vector per layer shared
// by all heads, so s cannot depend on g: one s per pair per layer. Without q/k norms (Llama,
// Qwen2) it is folded into k_proj's rows (and bias) and q_proj's rows of the group's query heads,
// and may differ per kv head.
//
// Values. A query head's output is sum_t p_t v_t, then o_proj mixes the heads' channels. Dividing
// v_proj's row (and bias) of channel c of kv head g by s and multiplying o_proj's input column
// h * hd + c by s for every query head h reading kv head g leaves the layer output unchanged.
//
// Every s is a power of two, so each scaled weight is exact in bf16, f16 and fp32 (checked element
// by element: where a weight would overflow or lose bits below the normal range, the slot's
// exponent moves toward 0 until all its weights are exact; apply_edit checks again). RMSNorm's
// normalisation comes before its gain, so it does not see the scaling.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace fusecheck {

// flat: every key pair's magnitude into one octave (M/2, M], M placed to minimise the per-tensor
// quantisation error the queries see (ANALYSIS.md 9.2); geo: key and query pair magnitudes to
// their geometric mean (nearest power of two). Values: flat = the same octave placement for value
// channels, weighted by the o_proj columns they feed.
enum class KeyBalance { kNone, kFlat, kGeo };
enum class ValueBalance { kNone, kFlat };
Result<KeyBalance> parse_key_balance(std::string_view s);      // "flat" | "geo" | "none"
Result<ValueBalance> parse_value_balance(std::string_view s);  // "flat" | "none"
std::string_view key_balance_name(KeyBalance k);
std::string_view value_balance_name(ValueBalance v);

struct RebalanceOptions {
  KeyBalance keys = KeyBalance::kFlat;
  ValueBalance values = ValueBalance::kFlat;
  // Scales from measured magnitudes (the fp32 reference on calibration inputs, see
  // repair/rebalance_calibrate.h) or from the weights alone.
  bool calibrate = true;
  std::string prompts;        // calibration prompts, one per line (needs the model's tokenizer)
  int64_t tokens = 64;        // per calibration sequence
  bool force = false;         // write into a non-empty output directory
  std::string arch_profiles;  // a data/architectures.json override; empty = built in
};

// One layer's transform, as base-2 exponents (s = 2^e).
struct LayerScales {
  std::vector<int> key_exp;    // [nkv * hd/2]: keys * s, queries / s, per kv head and RoPE pair
  std::vector<int> value_exp;  // [nkv * hd]: v_proj row / s, o_proj columns * s
  // The key magnitude per pair (measured: the largest pair radius; from weights: |gain| with q/k
  // norms, else the k_proj row norm), as max / median over the layer, before and after; the same
  // for the value channels.
  double key_spread_before = 1, key_spread_after = 1;
  double value_spread_before = 1, value_spread_after = 1;
  double key_max_before = 0, key_max_after = 0;  // the largest key magnitude itself
  int clamped = 0;  // slots whose exponent was moved toward 0 so every scaled weight stays exact
};

struct RebalancePlan {
  std::string arch;         // the architecture profile's name
  bool via_norms = false;   // key scales go into q_norm/k_norm (else into q_proj/k_proj rows)
  bool calibrated = false;  // scales from measured magnitudes (else from the weights)
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  std::string dtype;  // the projections' dtype, e.g. "BF16"
  std::vector<LayerScales> layers;
  std::vector<std::string> changed_tensors;  // full names, sorted
};

// Reads the checkpoint and chooses the scales; writes nothing.
Result<RebalancePlan> plan_rebalance(const std::string& model_dir, const RebalanceOptions& opt);

struct RebalanceSummary {
  RebalancePlan plan;
  int64_t files_rewritten = 0;       // safetensors files holding a changed tensor
  int64_t files_copied = 0;          // everything else, byte for byte
  std::vector<std::string> skipped;  // entries of MODEL not copied, with why
};

// Writes the rebalanced checkpoint into `out_dir` (created if needed): the same files, shards and
// tensor names; changed tensors rewritten in place in their shard, everything else byte for byte,
// plus fusecheck_rebalance.json recording the transform. All files are staged and renamed into
// place only once every one is complete. `out_dir` must not be `model_dir` and must be empty
// unless opt.force.
Result<RebalanceSummary> rebalance_checkpoint(const std::string& model_dir,
                                              const std::string& out_dir,
                                              const RebalanceOptions& opt);

constexpr std::string_view kRebalanceRecord = "fusecheck_rebalance.json";

}  // namespace fusecheck
