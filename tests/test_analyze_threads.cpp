// analyze_gains computes a large model's norm statistics on several threads: every figure must be
// the same to the last bit as on one thread (the oracle), whatever the thread count.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "analysis/analyze.h"
#include "kernels/numerics_profile.h"

namespace fusecheck {
namespace {

bool same_bits(const GainStats& a, const GainStats& b) {
  const double da[] = {a.max_abs, a.median_abs, a.ratio, a.mean_abs, a.variance, a.cv, a.min,
                       a.p01,     a.p05,        a.p25,   a.p75,      a.p95,      a.p99};
  const double db[] = {b.max_abs, b.median_abs, b.ratio, b.mean_abs, b.variance, b.cv, b.min,
                       b.p01,     b.p05,        b.p25,   b.p75,      b.p95,      b.p99};
  return std::memcmp(da, db, sizeof(da)) == 0 && a.n == b.n &&
         a.count_above_extreme == b.count_above_extreme && a.n_nan == b.n_nan &&
         a.n_inf == b.n_inf && a.n_negative == b.n_negative && a.n_subnormal == b.n_subnormal &&
         a.argmax == b.argmax;
}

TEST(AnalyzeThreads, StatisticsIndependentOfThreadCount) {
  ModelConfig c;
  c.num_layers = 24, c.num_heads = 8, c.num_kv_heads = 2, c.head_dim = 128, c.hidden_size = 4096;
  std::mt19937 rng(3);
  std::lognormal_distribution<float> gain(0.0f, 0.5f);
  std::vector<NormGains> norms;  // 24 x (4096 + 4096 + 128 + 128) channels: above the threshold
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (auto [role, kind, n] : {std::tuple{"input_layernorm", NormKind::kBlock, 4096},
                                 {"post_attention_layernorm", NormKind::kBlock, 4096},
                                 {"q_norm", NormKind::kQ, 128},
                                 {"k_norm", NormKind::kK, 128}}) {
      NormGains g{role, std::string(role) + "." + std::to_string(l), kind, l, {}};
      for (int i = 0; i < n; ++i) g.gains.push_back((rng() % 2 ? 1 : -1) * gain(rng));
      if (l == 5 && kind == NormKind::kK) g.gains[7] = 96.5f;
      norms.push_back(std::move(g));
    }
  auto reg = NumericsRegistry::load("");
  ASSERT_TRUE(reg.ok());
  auto prof = reg->find("fused-int8kv");
  ASSERT_TRUE(prof.ok());
  const Analysis one = analyze_gains(c, QkNormScope::kPerHead, norms, *prof, 10.0, {}, {}, 1);
  for (int threads : {2, 3, 7}) {
    const Analysis many =
        analyze_gains(c, QkNormScope::kPerHead, norms, *prof, 10.0, {}, {}, threads);
    ASSERT_EQ(one.norms.size(), many.norms.size());
    for (size_t i = 0; i < one.norms.size(); ++i)
      EXPECT_TRUE(same_bits(one.norms[i].stats, many.norms[i].stats))
          << one.norms[i].tensor << " with " << threads << " threads";
    EXPECT_EQ(one.key_cache_loss, many.key_cache_loss);
    EXPECT_EQ(one.amplification, many.amplification);
  }
  EXPECT_EQ(one.norms[5 * 4 + 3].stats.max_abs, 96.5);  // the planted k_norm gain, found
}

}  // namespace
}  // namespace fusecheck
