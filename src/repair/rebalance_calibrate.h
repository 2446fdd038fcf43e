// The magnitudes the rebalance flattens, per layer: from the weights alone, or measured on the
// fp32 reference over short calibration sequences. Measured, they are the largest key and query
// RoPE-pair radius and the largest |value| per channel: a pair's radius sqrt(k_i^2 + k_{i+hd/2}^2)
// does not change under RoPE and bounds both rotated channels, so its maximum over positions is
// what a per-tensor KV scale sees, whatever the position.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "util/result.h"

namespace fusecheck::repair {

struct Shapes {
  int64_t dim, hd, half, nh, nkv, rep;  // rep = nh / nkv query heads per kv head
  double eps;                           // rms_norm_eps
};

// One layer's tensors in fp32 (empty when the model has none).
struct LayerTensors {
  std::vector<float> in_gain;     // [dim] input_layernorm
  std::vector<float> wq, wk, wv;  // [nh*hd, dim], [nkv*hd, dim], [nkv*hd, dim]
  std::vector<float> wo;          // [dim, nh*hd]
  std::vector<float> bq, bk, bv;  // [nh*hd], [nkv*hd], [nkv*hd]
  std::vector<float> gq, gk;      // [hd] q_norm / k_norm gains
  // Each tensor's dtype as stored (exactness of a scale depends on it).
  DType dq = DType::F32, dk = DType::F32, dv = DType::F32, dout = DType::F32;
  DType dbq = DType::F32, dbk = DType::F32, dbv = DType::F32, dgq = DType::F32, dgk = DType::F32;
};

// What a per-tensor KV quantiser's error costs, per slot: the cache's step is set by the largest
// key (value) of the layer, and a key slot's error reaches the logits multiplied by the query
// (a value slot's reaches the output through o_proj's columns), hence the weights.
struct LayerMagnitudes {
  std::vector<double> key;           // [nkv * half] largest key pair radius per kv head and pair
  std::vector<double> query;         // [nkv * half] largest query pair radius over the group
  std::vector<double> query_weight;  // [nkv * half] mean square query pair radius, group summed
  std::vector<double> value;         // [nkv * hd] largest |value| per kv head and channel
  std::vector<double> value_weight;  // [nkv * hd] squared norm of the o_proj columns it feeds
};

// From the weights: with q/k norms, |gain| (the larger of the pair), the same for every head;
// without, the norm of the projection row as the layer sees it (input gain applied); query
// weights are the query magnitudes squared.
LayerMagnitudes weight_magnitudes(const LayerTensors& t, const Shapes& s);

struct CalibrationOptions {
  std::string arch_profiles;  // as RebalanceOptions
  std::string prompts;        // one per line (needs tokenizer.json); empty: see below
  int64_t tokens = 64;        // per sequence
};

// The residual stream entering every layer over all calibration tokens: [n_layers][T * dim].
// Inputs: `prompts`, else the probe's built-in texts when the model has a tokenizer, else four
// pseudo-random sequences with a seed of their own (so a probe afterwards measures other inputs).
Result<std::vector<std::vector<float>>> calibration_hidden(const std::string& model_dir,
                                                           const CalibrationOptions& opt);

// Measured magnitudes of one layer from its input `hidden` ([T, dim]).
LayerMagnitudes measured_magnitudes(const std::vector<float>& hidden, const LayerTensors& t,
                                    const Shapes& s);

}  // namespace fusecheck::repair
