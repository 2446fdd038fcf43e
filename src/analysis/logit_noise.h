// Attention-logit noise implied by q/k norm gains under a kernel set's numerics (docs/ANALYSIS.md
// derives every term). Activations after a per-head RMSNorm have unit RMS per channel, so channel i
// of q (k) has magnitude ~ g_q[i] (g_k[i]). The logit is q.k / sqrt(head_dim); rounding, quantizing
// or accumulating q and k with relative error e adds noise whose variance is a gain-weighted sum.
// RoPE rotates channels i and i + head_dim/2 together, so gains enter through pair averages.
//
// The result is expressed as an amplification: the noise's standard deviation divided by that of
// the reference case, bf16 rounding (u = 2^-8) of q and k in a model whose gains are all 1.
#pragma once

#include <span>

#include "kernels/numerics_profile.h"

namespace fusecheck {

struct LogitNoise {
  double amplification = 0;      // sigma / sigma_ref; the checker's per-layer "amplification"
  double sigma = 0;              // std of the logit noise, in logits
  double pair_gain_product = 0;  // S_pair: (2/d) sum_p Qp*Kp, 1 for unit gains
  double max_key_estimate = 0;   // c_peak * max_p sqrt(2 Kp): the largest |k| the cache must hold
  double max_logit_sum_estimate = 0;  // c_peak^2 * sum_i |g_q[i] g_k[i]|: worst-case partial sum
  bool fp16_overflow_risk = false;    // an fp16 KV cache or accumulator could overflow (> 65504)
  // The three terms separately, each as an amplification (sqrt(var_term / var_ref)):
  double rounding_amplification = 0;      // (1) the moved bf16 rounding of q and k
  double cache_amplification = 0;         // (2) the lossy KV cache's key error
  double accumulation_amplification = 0;  // (3) a narrow accumulator
  // What the cache loses relative to the keys it stores: sqrt(var_2 / (var_ref * S_pair)), i.e.
  // term (2) divided by the logit signal. Constant (the cache's floor) for per-channel int8 and
  // fp8, whatever the gains; it grows for per-tensor int8 when some key outgrows the others. q
  // gains only weight it (no KV cache stores q). 0 for caches that lose nothing.
  double key_cache_loss = 0;
};

// Peak-to-RMS factor of normalized activations assumed for quantization scales and overflow.
constexpr double kPeakFactor = 4.0;
// Unit roundoff of the reference rounding (bf16).
constexpr double kBf16UnitRoundoff = 1.0 / 256.0;

// g_q and g_k: one head's effective gains (|g|), both of length head_dim (even).
LogitNoise logit_noise(std::span<const float> g_q, std::span<const float> g_k,
                       const NumericsProfile& kernels);

}  // namespace fusecheck
