#include "analysis/logit_noise.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace fusecheck {

namespace {
const double kRelVar = 1.0 / (8.0 * std::log(2.0));

// Mean squared error of quantizing x ~ N(0, sigma^2) to the grid n*step, |n| <= levels, by
// rounding to nearest. Exact sum over bins: for a bin [a, b) with centre c,
//   E[(x - c)^2; a <= x < b] = sigma^2 [Phi - z phi]_a^b - 2 sigma c [-phi]_a^b + c^2 [Phi]_a^b
// (z = x / sigma). The familiar step^2 / 12 holds only when step << sigma; when one outlier sets
// the step, most channels round to 0 and their error is their own value (variance sigma^2).
double gaussian_quant_mse(double sigma, double step, int levels) {
  if (sigma <= 0) return 0;
  auto phi = [](double z) {
    return std::isinf(z) ? 0.0 : std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
  };
  auto Phi = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
  auto zphi = [&](double z) { return std::isinf(z) ? 0.0 : z * phi(z); };
  // Bins beyond 9 sigma carry nothing measurable.
  const int reach = int(std::min<double>(levels, std::ceil(9 * sigma / step) + 1));
  double mse = 0;
  for (int n = -reach; n <= reach; ++n) {
    const double c = n * step;
    const double a = (n == -levels) ? -INFINITY : (n - 0.5) * step;
    const double b = (n == levels) ? INFINITY : (n + 0.5) * step;
    const double za = a / sigma, zb = b / sigma;
    const double p = Phi(zb) - Phi(za);
    const double m2 = p - (zphi(zb) - zphi(za));
    const double m1 = phi(za) - phi(zb);
    mse += sigma * sigma * m2 - 2 * sigma * c * m1 + c * c * p;
  }
  return std::max(0.0, mse);
}

// (2) of logit_noise: the logit variance from keys stored in a lossy cache (cached values change
// the attention output, not the logits, so only keys enter here). s_pair, max_k2: logit_noise's.
double cache_variance(std::span<const float> g_q, std::span<const float> g_k,
                      const NumericsProfile& kernels, double s_pair, double max_k2) {
  const size_t d = g_q.size(), half = d / 2;
  const double c = kPeakFactor;
  switch (kernels.kv_format) {
    case KvFormat::kSame:
    case KvFormat::kFp16:  // finer than bf16: adds nothing beyond (1), but can overflow
      break;
    case KvFormat::kInt8:
      // A rotated key channel of pair p is ~N(0, Kp); its quantization error (mse_p) multiplies
      // the query channel (variance Qp): var += (2/d) sum_p Qp * mse_p.
      // Per tensor: one step for every channel, set by the largest key, c * max|k| / 127.
      // Per channel: each pair's own step, c * sqrt(2 Kp) / 127.
      {
        double sum = 0;
        for (size_t i = 0; i < half; ++i) {
          const size_t j = i + half;
          const double qp = 0.5 * (double(g_q[i]) * g_q[i] + double(g_q[j]) * g_q[j]);
          const double kp = 0.5 * (double(g_k[i]) * g_k[i] + double(g_k[j]) * g_k[j]);
          const double peak = kernels.kv_scale == KvScale::kPerTensor ? max_k2 : 2 * kp;
          const double step = c * std::sqrt(peak) / 127.0;
          sum += qp * (step > 0 ? gaussian_quant_mse(std::sqrt(kp), step, 127) : 0.0);
        }
        return sum * 2.0 / double(d);
      }
    case KvFormat::kFp8E4M3: {
      // 3 mantissa bits: relative unit roundoff 2^-4 for normal values.
      const double u8 = 1.0 / 16.0;
      return (u8 * u8 * kRelVar) * s_pair;
    }
  }
  return 0.0;
}

}  // namespace

LogitNoise logit_noise(std::span<const float> g_q, std::span<const float> g_k,
                       const NumericsProfile& kernels) {
  assert(g_q.size() == g_k.size() && g_q.size() % 2 == 0 && !g_q.empty());
  const size_t d = g_q.size();
  const size_t half = d / 2;
  // Pair averages over a RoPE pair p = (i, i + d/2): after rotation by an arbitrary angle each
  // channel of the pair carries on average (g_i^2 + g_j^2) / 2 of the squared magnitude.
  double s_pair = 0;       // (2/d) sum_p Qp Kp
  double max_k2 = 0;       // max_p 2 Kp (squared peak magnitude of a rotated key channel pair)
  double abs_product = 0;  // sum_i |g_q g_k|
  for (size_t i = 0; i < half; ++i) {
    const size_t j = i + half;
    const double qp = 0.5 * (double(g_q[i]) * g_q[i] + double(g_q[j]) * g_q[j]);
    const double kp = 0.5 * (double(g_k[i]) * g_k[i] + double(g_k[j]) * g_k[j]);
    s_pair += qp * kp;
    max_k2 = std::max(max_k2, 2 * kp);
    abs_product += std::fabs(double(g_q[i]) * g_k[i]) + std::fabs(double(g_q[j]) * g_k[j]);
  }
  s_pair *= 2.0 / double(d);

  LogitNoise out;
  out.pair_gain_product = s_pair;
  out.max_key_estimate = kPeakFactor * std::sqrt(max_k2);
  out.max_logit_sum_estimate = kPeakFactor * kPeakFactor * abs_product;

  // Round-to-nearest with unit roundoff u: the absolute error is uniform over one ulp, and a
  // value's significand m in [1, 2) is ~log-uniform, so the relative error has variance
  // u^2 * kRelVar with kRelVar = E[1/(3 m^2)] = 1 / (8 ln 2) ~ 0.180 (not the u^2/3 of a uniform
  // relative error). tests/test_logit_noise.cpp checks this by simulation.
  // (1) Fusion moves the rounding of q and of k: 2 * u^2 * kRelVar * S_pair.
  const double ua = kernels.activation_unit_roundoff;
  const double var1 = 2.0 * (ua * ua * kRelVar) * s_pair;
  // (2) Keys stored in a lossy cache.
  const double var2 = cache_variance(g_q, g_k, kernels, s_pair, max_k2);
  // (3) A narrow accumulator rounds every partial sum of q.k; partial sums grow like a random walk,
  // sum_m E[s_m^2] ~ (d^2 / 2) S_pair, and the 1/sqrt(d) scale divides the variance by d.
  const double uacc = kernels.accumulation_unit_roundoff;
  const double var3 = (uacc * uacc * kRelVar) * (double(d) / 2.0) * s_pair;
  const double var = var1 + var2 + var3;

  const bool fp16_cache = kernels.kv_format == KvFormat::kFp16;
  const bool fp16_accum = uacc > 0;
  out.fp16_overflow_risk = (fp16_cache && out.max_key_estimate > 65504.0) ||
                           (fp16_accum && out.max_logit_sum_estimate > 65504.0);

  const double var_ref = 2.0 * (kBf16UnitRoundoff * kBf16UnitRoundoff * kRelVar);
  out.sigma = std::sqrt(var);
  out.amplification = std::sqrt(var / var_ref);
  out.rounding_amplification = std::sqrt(var1 / var_ref);
  out.cache_amplification = std::sqrt(var2 / var_ref);
  out.accumulation_amplification = std::sqrt(var3 / var_ref);
  out.key_cache_loss = s_pair > 0 ? std::sqrt(var2 / (var_ref * s_pair)) : 0.0;
  return out;
}

}  // namespace fusecheck
