// The logit-noise model (src/analysis/logit_noise.cpp) against an independent Monte Carlo oracle:
// random unit-RMS activations, real bf16 / int8 / fp8-like rounding of q and k, RoPE rotation of
// the pair channels (i, i + d/2), a sequentially rounded fp16 accumulator, and the measured
// standard deviation of the attention-logit change.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "analysis/logit_noise.h"
#include "util/half.h"

namespace fusecheck {
namespace {

enum class Lossy { kBf16Activations, kInt8PerTensorKeys, kInt8PerChannelKeys };

// Simulated std of (q' . k' - q . k) / sqrt(d) where ' is the lossy version.
double simulate_sigma(const std::vector<float>& gq, const std::vector<float>& gk, Lossy mode,
                      int samples = 6000) {
  const size_t d = gq.size(), half = d / 2;
  std::mt19937_64 rng(1234);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> angle(0, 2 * M_PI);
  // Quantization steps as the model defines them (the model's scale choice, not its variance).
  double max_pair = 0;
  for (size_t i = 0; i < half; ++i)
    max_pair =
        std::max(max_pair, std::sqrt(double(gk[i]) * gk[i] + double(gk[i + half]) * gk[i + half]));
  double sum_sq = 0;
  std::vector<double> q(d), k(d), qe(d), ke(d), kr(d), ker(d);
  for (int s = 0; s < samples; ++s) {
    for (size_t i = 0; i < d; ++i) {
      q[i] = gq[i] * normal(rng);
      k[i] = gk[i] * normal(rng);
      // bf16: round q and k where the projection writes them, before RoPE.
      const bool round = mode == Lossy::kBf16Activations;
      qe[i] = round ? bf16_to_f32(f32_to_bf16(float(q[i]))) : q[i];
      ke[i] = round ? bf16_to_f32(f32_to_bf16(float(k[i]))) : k[i];
    }
    // Rotate the keys against the query by an arbitrary angle per pair (RoPE at some distance).
    for (size_t i = 0; i < half; ++i) {
      const double t = angle(rng), c = std::cos(t), sn = std::sin(t);
      kr[i] = k[i] * c - k[i + half] * sn;
      kr[i + half] = k[i] * sn + k[i + half] * c;
      ker[i] = ke[i] * c - ke[i + half] * sn;
      ker[i + half] = ke[i] * sn + ke[i + half] * c;
    }
    // int8 caches store rotated keys, quantized symmetrically with the model's step choice.
    if (mode != Lossy::kBf16Activations) {
      for (size_t i = 0; i < d; ++i) {
        const size_t p = i % half;
        const double pair = std::sqrt(double(gk[p]) * gk[p] + double(gk[p + half]) * gk[p + half]);
        const double step =
            kPeakFactor * (mode == Lossy::kInt8PerTensorKeys ? max_pair : pair) / 127.0;
        ker[i] = std::clamp(std::nearbyint(kr[i] / step), -127.0, 127.0) * step;
      }
    }
    double exact = 0, lossy = 0;
    for (size_t i = 0; i < d; ++i) {
      exact += q[i] * kr[i];
      lossy += qe[i] * ker[i];
    }
    const double delta = (lossy - exact) / std::sqrt(double(d));
    sum_sq += delta * delta;
  }
  return std::sqrt(sum_sq / samples);
}

NumericsProfile profile(double ua, KvFormat kv, KvScale scale = KvScale::kPerTensor) {
  NumericsProfile p;
  p.name = "test";
  p.activation_unit_roundoff = ua;
  p.kv_format = kv;
  p.kv_scale = scale;
  return p;
}

// Log-normal gains with a planted outlier pair, like a trained k_norm with extreme channels.
std::vector<float> gains(size_t d, double outlier, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<float> g(d);
  for (auto& x : g) x = float(std::exp(0.3 * normal(rng)));
  if (outlier > 0) {
    g[d - 3] = float(outlier);
    g[d / 2 - 3] = float(0.6 * outlier);
  }
  return g;
}

TEST(LogitNoise, UnitGainsAreTheReference) {
  std::vector<float> ones(128, 1.0f);
  LogitNoise n = logit_noise(ones, ones, profile(kBf16UnitRoundoff, KvFormat::kSame));
  EXPECT_NEAR(n.amplification, 1.0, 1e-12);
  EXPECT_NEAR(n.pair_gain_product, 1.0, 1e-12);
  // Reference profile: nothing moves, no noise.
  EXPECT_EQ(logit_noise(ones, ones, profile(0, KvFormat::kSame)).amplification, 0.0);
}

TEST(LogitNoise, ReducesToUnpairedFormulaWhenPairsAreEqual) {
  // With g[i] == g[i + d/2], the pair-aware product equals the unpaired formula ||g_q * g_k||_2^2 /
  // d.
  const size_t d = 64;
  std::vector<float> gq(d), gk(d);
  for (size_t i = 0; i < d / 2; ++i) {
    gq[i] = gq[i + d / 2] = 1.0f + 0.1f * float(i);
    gk[i] = gk[i + d / 2] = 2.0f - 0.03f * float(i);
  }
  double norm2 = 0;
  for (size_t i = 0; i < d; ++i) norm2 += double(gq[i]) * gq[i] * gk[i] * gk[i];
  LogitNoise n = logit_noise(gq, gk, profile(kBf16UnitRoundoff, KvFormat::kSame));
  EXPECT_NEAR(n.amplification, std::sqrt(norm2 / double(d)), 1e-9);
}

TEST(LogitNoise, Bf16ActivationRoundingMatchesSimulation) {
  for (double outlier : {0.0, 30.0, 96.5}) {
    auto gq = gains(128, 0, 1), gk = gains(128, outlier, 2);
    const double model = logit_noise(gq, gk, profile(kBf16UnitRoundoff, KvFormat::kSame)).sigma;
    const double measured = simulate_sigma(gq, gk, Lossy::kBf16Activations);
    EXPECT_NEAR(model / measured, 1.0, 0.05)
        << "outlier " << outlier << ": model " << model << " measured " << measured;
  }
}

TEST(LogitNoise, Int8KeyCacheMatchesSimulation) {
  for (double outlier : {0.0, 96.5}) {
    auto gq = gains(128, 0, 3), gk = gains(128, outlier, 4);
    const double per_tensor = logit_noise(gq, gk, profile(0, KvFormat::kInt8)).sigma;
    const double per_tensor_mc = simulate_sigma(gq, gk, Lossy::kInt8PerTensorKeys);
    EXPECT_NEAR(per_tensor / per_tensor_mc, 1.0, 0.05) << "per-tensor, outlier " << outlier;
    const double per_channel =
        logit_noise(gq, gk, profile(0, KvFormat::kInt8, KvScale::kPerChannel)).sigma;
    const double per_channel_mc = simulate_sigma(gq, gk, Lossy::kInt8PerChannelKeys);
    EXPECT_NEAR(per_channel / per_channel_mc, 1.0, 0.05) << "per-channel, outlier " << outlier;
  }
}

// Term 3 (docs/ANALYSIS.md 4.8) against a simulated fp16 accumulator: every partial sum of q.k
// rounded to fp16 in order, as the model assumes (sequential accumulation). The oracle rounds
// with util/half.h's IEEE binary16 conversion; the model only counts the partial sums' rounding.
double simulate_fp16_accumulation_sigma(const std::vector<float>& gq, const std::vector<float>& gk,
                                        int samples = 6000) {
  const size_t d = gq.size();
  std::mt19937_64 rng(99);
  std::normal_distribution<double> normal;
  double sum_sq = 0;
  for (int s = 0; s < samples; ++s) {
    double exact = 0;
    float acc = 0;
    for (size_t i = 0; i < d; ++i) {
      const double p = gq[i] * normal(rng) * gk[i] * normal(rng);
      exact += p;
      acc = f16_to_f32(f32_to_f16(float(double(acc) + p)));
    }
    const double delta = (double(acc) - exact) / std::sqrt(double(d));
    sum_sq += delta * delta;
  }
  return std::sqrt(sum_sq / samples);
}

TEST(LogitNoise, Fp16AccumulationMatchesSimulation) {
  NumericsProfile p = profile(0, KvFormat::kSame);
  p.accumulation_unit_roundoff = 1.0 / 2048.0;
  for (size_t d : {64, 128, 256}) {
    auto gq = gains(d, 0, 5), gk = gains(d, 0, 6);
    const double model = logit_noise(gq, gk, p).sigma;
    const double measured = simulate_fp16_accumulation_sigma(gq, gk);
    EXPECT_NEAR(model / measured, 1.0, 0.05)
        << "d " << d << ": model " << model << " measured " << measured;
  }
}

TEST(LogitNoise, PerTensorInt8IsCrushedByOneOutlier) {
  auto gq = gains(128, 0, 5);
  auto ordinary = gains(128, 0, 6), extreme = gains(128, 96.5, 6);
  const auto p = profile(0, KvFormat::kInt8);
  // The outlier sets the step for every channel: the noise grows about in proportion to it.
  EXPECT_GT(logit_noise(gq, extreme, p).sigma / logit_noise(gq, ordinary, p).sigma, 20.0);
}

TEST(LogitNoise, Fp16OverflowRiskIsFlagged) {
  std::vector<float> gq(64, 1.0f), gk(64, 1.0f);
  NumericsProfile acc = profile(kBf16UnitRoundoff, KvFormat::kSame);
  acc.accumulation_unit_roundoff = 1.0 / 2048;
  EXPECT_FALSE(logit_noise(gq, gk, acc).fp16_overflow_risk);
  std::fill(gq.begin(), gq.end(), 100.0f);
  std::fill(gk.begin(), gk.end(), 100.0f);
  EXPECT_TRUE(logit_noise(gq, gk, acc).fp16_overflow_risk);  // 16 * 64 * 1e4 > 65504
}

}  // namespace
}  // namespace fusecheck
