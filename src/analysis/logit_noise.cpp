#include "analysis/logit_noise.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace fusecheck {

LogitNoise logit_noise(std::span<const float> g_q, std::span<const float> g_k,
                       const NumericsProfile& kernels) {
  assert(g_q.size() == g_k.size() && g_q.size() % 2 == 0 && !g_q.empty());
  const size_t d = g_q.size();
  const size_t half = d / 2;
  // Pair averages over a RoPE pair p = (i, i + d/2): after rotation by an arbitrary angle each
  // channel of the pair carries on average (g_i^2 + g_j^2) / 2 of the squared magnitude.
  double s_pair = 0;         // (2/d) sum_p Qp Kp
  double mean_q = 0;         // (2/d) sum_p Qp = mean of g_q^2
  double max_k2 = 0;         // max_p 2 Kp (squared peak magnitude of a rotated key channel pair)
  double per_channel = 0;    // (2/d) sum_p Qp * (2 Kp): int8 per-channel key quantization
  double abs_product = 0;    // sum_i |g_q g_k|
  for (size_t i = 0; i < half; ++i) {
    const size_t j = i + half;
    const double qp = 0.5 * (double(g_q[i]) * g_q[i] + double(g_q[j]) * g_q[j]);
    const double kp = 0.5 * (double(g_k[i]) * g_k[i] + double(g_k[j]) * g_k[j]);
    s_pair += qp * kp;
    mean_q += qp;
    max_k2 = std::max(max_k2, 2 * kp);
    per_channel += qp * 2 * kp;
    abs_product += std::fabs(double(g_q[i]) * g_k[i]) + std::fabs(double(g_q[j]) * g_k[j]);
  }
  s_pair *= 2.0 / double(d);
  mean_q *= 2.0 / double(d);
  per_channel *= 2.0 / double(d);

  LogitNoise out;
  out.pair_gain_product = s_pair;
  out.max_key_estimate = kPeakFactor * std::sqrt(max_k2);
  out.max_logit_sum_estimate = kPeakFactor * kPeakFactor * abs_product;

  // Relative round-to-nearest errors are ~uniform in [-u, u]: variance u^2 / 3 per element.
  // (1) Fusion moves the rounding of q and of k: 2 * (u^2/3) * S_pair.
  const double ua = kernels.activation_unit_roundoff;
  double var = 2.0 * (ua * ua / 3.0) * s_pair;
  // (2) Keys stored in a lossy cache. Cached values change the attention output, not the logits,
  // so only keys enter here.
  const double c = kPeakFactor;
  switch (kernels.kv_format) {
    case KvFormat::kSame:
    case KvFormat::kFp16:  // finer than bf16: adds nothing beyond (1), but can overflow
      break;
    case KvFormat::kInt8:
      if (kernels.kv_scale == KvScale::kPerTensor) {
        // One step for every channel, set by the largest key: delta = c * max|k| / 127.
        const double delta = c * std::sqrt(max_k2) / 127.0;
        var += delta * delta / 12.0 * mean_q;
      } else {
        // Each channel's own step: delta_p = c * sqrt(2 Kp) / 127.
        var += (c * c / (127.0 * 127.0)) / 12.0 * per_channel;
      }
      break;
    case KvFormat::kFp8E4M3: {
      // 3 mantissa bits: relative unit roundoff 2^-4 for normal values.
      const double u8 = 1.0 / 16.0;
      var += (u8 * u8 / 3.0) * s_pair;
      break;
    }
  }
  // (3) A narrow accumulator rounds every partial sum of q.k; partial sums grow like a random walk,
  // sum_m E[s_m^2] ~ (d^2 / 2) S_pair, and the 1/sqrt(d) scale divides the variance by d.
  const double uacc = kernels.accumulation_unit_roundoff;
  var += (uacc * uacc / 3.0) * (double(d) / 2.0) * s_pair;

  const bool fp16_cache = kernels.kv_format == KvFormat::kFp16;
  const bool fp16_accum = uacc > 0;
  out.fp16_overflow_risk = (fp16_cache && out.max_key_estimate > 65504.0) ||
                           (fp16_accum && out.max_logit_sum_estimate > 65504.0);

  const double var_ref = 2.0 * (kBf16UnitRoundoff * kBf16UnitRoundoff / 3.0);
  out.sigma = std::sqrt(var);
  out.amplification = std::sqrt(var / var_ref);
  return out;
}

}  // namespace fusecheck
