// Every fused kernel against a scalar reference of its own math computed in double and rounded
// once, over a sweep of sizes; plus the lossy KV formats against independent definitions.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fused.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quant.h"
#include "model/kv_cache.h"
#include "random_testing.h"
#include "util/half.h"

namespace fusecheck::cpu {
namespace {

using testing::randn;

// One rounding of (nearly) the exact value: within half a unit of `t` of it, plus what fp32
// intermediates can add, bounded by 2^-20 of the magnitude `mag` of the terms that were summed
// (cancellation makes that the dominant part on F32). A second rounding, as the unfused ops make,
// can break the half-unit bound.
::testing::AssertionResult one_rounding(float got, double exact, double mag, ActType t) {
  int e = 0;
  std::frexp(exact == 0 ? 1e-30 : exact, &e);
  const int mant = t == ActType::BF16 ? 7 : t == ActType::F16 ? 10 : 23;
  const double half_ulp = std::ldexp(1.0, e - 2 - mant);
  const double limit = half_ulp * 1.02 + std::ldexp(mag, -20);
  if (std::fabs(got - exact) <= limit) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got " << got << ", exact " << exact << ", off by "
                                       << std::fabs(got - exact) / (2 * half_ulp) << " units";
}

constexpr ActType kTypes[] = {ActType::F32, ActType::BF16, ActType::F16};
constexpr int64_t kSizes[] = {2, 8, 32, 34, 64, 126, 128, 130};

Weight as_weight(const std::vector<float>& w, int64_t rows, int64_t cols) {
  return Weight{DType::F32, w.data(), rows, cols};
}

TEST(FusedKernels, AddRmsnormRoundsOnceFromTheUnroundedSum) {
  std::mt19937 rng(1);
  int moved = 0;
  for (ActType t : kTypes)
    for (int64_t n : kSizes) {
      auto h = randn(n, rng, 3.0f, t), d = randn(n, rng, 1.0f, t), g = randn(n, rng, 1.0f, t);
      std::vector<float> hf = h, normed(n), sum(n);
      fused_add_rmsnorm(hf.data(), d.data(), normed.data(), sum.data(), g.data(), n, 1e-6f, t);
      double ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += (double(h[i]) + d[i]) * (double(h[i]) + d[i]);
      const double inv = 1.0 / std::sqrt(ss / n + 1e-6);
      for (int64_t i = 0; i < n; ++i) {
        const double s = double(h[i]) + d[i];
        EXPECT_EQ(hf[i], round_one(t, float(s)));  // the stored residual
        EXPECT_TRUE(one_rounding(normed[i], g[i] * s * inv, std::fabs(g[i] * s * inv), t)) << n;
      }
      // The unfused ops round the sum and the normalised value before the gain: a different
      // rounding point, which must show on some elements of a bf16 vector.
      std::vector<float> hu(n), nu(n);
      add(hu.data(), h.data(), d.data(), n, t);
      rmsnorm(nu.data(), hu.data(), g.data(), n, 1e-6f, t);
      for (int64_t i = 0; i < n; ++i) moved += nu[i] != normed[i];
    }
  EXPECT_GT(moved, 0);
}

TEST(FusedKernels, RmsnormQkvRoundsOnlyTheProjections) {
  std::mt19937 rng(2);
  for (ActType t : kTypes)
    for (int64_t dim : {8, 32, 64, 130})
      for (int64_t T : {1, 3}) {
        const int64_t rq = 6, rk = 4;
        auto x = randn(T * dim, rng, 2.0f, t), g = randn(dim, rng, 1.0f, t);
        auto wq = randn(rq * dim, rng, 0.2f, t), wk = randn(rk * dim, rng, 0.2f, t),
             wv = randn(rk * dim, rng, 0.2f, t), bq = randn(rq, rng, 0.5f, t);
        std::vector<float> q(T * rq), k(T * rk), v(T * rk), xn(T * dim);
        fused_rmsnorm_qkv(q.data(), k.data(), v.data(), x.data(), T, g.data(), 1e-6f,
                          as_weight(wq, rq, dim), as_weight(wk, rk, dim), as_weight(wv, rk, dim),
                          as_weight(bq, 1, rq), Weight{}, Weight{}, t, xn.data(), nullptr);
        for (int64_t tok = 0; tok < T; ++tok) {
          double ss = 0;
          for (int64_t i = 0; i < dim; ++i) ss += double(x[tok * dim + i]) * x[tok * dim + i];
          const double inv = 1.0 / std::sqrt(ss / dim + 1e-6);
          auto check = [&](float got, const std::vector<float>& w, const float* bias, int64_t r) {
            double acc = bias ? bias[r] : 0.0, mag = bias ? std::fabs(bias[r]) : 0.0;
            for (int64_t i = 0; i < dim; ++i) {
              const double term = g[i] * x[tok * dim + i] * inv * w[r * dim + i];
              acc += term, mag += std::fabs(term);
            }
            EXPECT_TRUE(one_rounding(got, acc, mag, t)) << "dim " << dim;
          };
          for (int64_t r = 0; r < rq; ++r) check(q[tok * rq + r], wq, bq.data(), r);
          for (int64_t r = 0; r < rk; ++r) {
            check(k[tok * rk + r], wk, nullptr, r);
            check(v[tok * rk + r], wv, nullptr, r);
          }
        }
      }
}

TEST(FusedKernels, QkNormRopeMatchesTheExactRotation) {
  std::mt19937 rng(3);
  for (ActType t : kTypes)
    for (int64_t hd : {2, 8, 32, 64, 128})
      for (bool with_norm : {false, true}) {
        const int64_t heads = 3, half = hd / 2;
        auto x = randn(heads * hd, rng, 2.0f, t), g = randn(hd, rng, 4.0f, t);
        std::vector<float> cs(half), sn(half);
        for (int64_t i = 0; i < half; ++i)
          cs[i] = std::cos(0.3f * i + 1), sn[i] = std::sin(0.3f * i + 1);
        std::vector<float> y = x;
        fused_qk_norm_rope(y.data(), heads, hd, with_norm ? g.data() : nullptr, 1e-6f, cs.data(),
                           sn.data(), t);
        for (int64_t h = 0; h < heads; ++h) {
          const float* xh = &x[h * hd];
          double ss = 0;
          for (int64_t i = 0; i < hd; ++i) ss += double(xh[i]) * xh[i];
          const double inv = with_norm ? 1.0 / std::sqrt(ss / hd + 1e-6) : 1.0;
          for (int64_t i = 0; i < half; ++i) {
            const double x1 = (with_norm ? g[i] : 1.0) * xh[i] * inv;
            const double x2 = (with_norm ? g[i + half] : 1.0) * xh[i + half] * inv;
            const double mag = std::fabs(x1) + std::fabs(x2);
            EXPECT_TRUE(one_rounding(y[h * hd + i], x1 * cs[i] - x2 * sn[i], mag, t)) << hd;
            EXPECT_TRUE(one_rounding(y[h * hd + i + half], x2 * cs[i] + x1 * sn[i], mag, t)) << hd;
          }
        }
      }
}

// Two-pass softmax in double, then one rounding: what the online softmax must reproduce.
std::vector<double> attention_reference(const std::vector<float>& q, const std::vector<float>& k,
                                        const std::vector<float>& v, int64_t n, int64_t hd,
                                        double scale) {
  std::vector<double> s(n), out(hd, 0.0);
  double mx = -INFINITY, sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    double d = 0;
    for (int64_t i = 0; i < hd; ++i) d += double(q[i]) * k[j * hd + i];
    s[j] = d * scale;
    mx = std::max(mx, s[j]);
  }
  for (auto& x : s) sum += (x = std::exp(x - mx));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < hd; ++i) out[i] += s[j] / sum * v[j * hd + i];
  return out;
}

TEST(FusedKernels, OnlineSoftmaxAttentionMatchesTwoPass) {
  std::mt19937 rng(4);
  for (ActType t : kTypes)
    for (int64_t hd : {8, 32, 128})
      for (int64_t n : {1, 2, 5, 33, 100}) {
        auto q = randn(hd, rng, 1.0f, t), k = randn(n * hd, rng, 1.0f, t),
             v = randn(n * hd, rng, 1.0f, t);
        const float scale = 1.0f / std::sqrt(float(hd));
        std::vector<float> out(hd), acc(hd);
        fused_attention(out.data(), q.data(), k.data(), v.data(), n, hd, hd, scale, t, false,
                        acc.data());
        auto ref = attention_reference(q, k, v, n, hd, scale);
        // The terms p_j v_j sum to at most max|v|; exp and the online rescaling add a few fp32
        // units on top, covered by the 2^-20 magnitude term with mag = 4 max|v|.
        double vmax = 0;
        for (float x : v) vmax = std::max(vmax, double(std::fabs(x)));
        for (int64_t i = 0; i < hd; ++i)
          EXPECT_TRUE(one_rounding(out[i], ref[i], 4 * vmax, t)) << "hd " << hd << " n " << n;
      }
}

TEST(FusedKernels, Fp16AccumulationRoundsEveryPartialSum) {
  // Two keys whose q.k differ only in small parts: 128 terms of 1 against 128 of 1 + 2^-8
  // (exactly 128 vs 128.5). An fp16 accumulator rounds each partial sum and loses part of the
  // difference; the expected scores come from the compiler's own _Float16 arithmetic, an
  // independent implementation of fp16 rounding.
  const int64_t hd = 128;
  std::vector<float> q(hd, 1.0f), k(2 * hd), v(2 * hd), out(hd), acc(hd);
  for (int64_t i = 0; i < hd; ++i)
    k[i] = 1.0f, k[hd + i] = 1.0f + 1.0f / 256, v[i] = 0, v[hd + i] = 1;
  auto softmax_weight_of_key2 = [](double s1, double s2) {
    return 1.0 / (1.0 + std::exp(s1 - s2));
  };
  fused_attention(out.data(), q.data(), k.data(), v.data(), 2, hd, hd, 1.0f, ActType::F32, false,
                  acc.data());
  EXPECT_NEAR(out[0], softmax_weight_of_key2(128.0, 128.5), 1e-6);
  _Float16 s1 = 0, s2 = 0;
  for (int64_t i = 0; i < hd; ++i) {
    s1 = static_cast<_Float16>(static_cast<float>(s1) + q[i] * k[i]);
    s2 = static_cast<_Float16>(static_cast<float>(s2) + q[i] * k[hd + i]);
  }
  EXPECT_NE(static_cast<float>(s2) - static_cast<float>(s1), 0.5f);  // the difference is damaged
  fused_attention(out.data(), q.data(), k.data(), v.data(), 2, hd, hd, 1.0f, ActType::F32, true,
                  acc.data());
  EXPECT_NEAR(out[0], softmax_weight_of_key2(float(s1), float(s2)), 1e-6);
}

TEST(FusedKernels, GateUpSiluRoundsOnce) {
  std::mt19937 rng(5);
  for (ActType t : kTypes)
    for (int64_t dim : {8, 33, 64})
      for (int64_t T : {1, 2}) {
        const int64_t rows = 5;
        auto x = randn(T * dim, rng, 1.0f, t), wg = randn(rows * dim, rng, 0.3f, t),
             wu = randn(rows * dim, rng, 0.3f, t);
        std::vector<float> out(T * rows), gate(T * rows), up(T * rows);
        fused_gate_up_silu(out.data(), x.data(), T, as_weight(wg, rows, dim),
                           as_weight(wu, rows, dim), t, gate.data(), up.data(), nullptr);
        for (int64_t tok = 0; tok < T; ++tok)
          for (int64_t r = 0; r < rows; ++r) {
            double g = 0, u = 0;
            for (int64_t i = 0; i < dim; ++i)
              g += double(x[tok * dim + i]) * wg[r * dim + i],
                  u += double(x[tok * dim + i]) * wu[r * dim + i];
            const double want = g / (1 + std::exp(-g)) * u;  // silu(g) * u
            double mag = 0;
            for (int64_t i = 0; i < dim; ++i)
              mag += std::fabs(x[tok * dim + i]) *
                     (std::fabs(wg[r * dim + i]) + std::fabs(wu[r * dim + i]));
            EXPECT_TRUE(one_rounding(out[tok * rows + r], want,
                                     mag * (1 + std::fabs(g) + std::fabs(u)), t));
          }
      }
}

// fp8 e4m3 values decoded from their bit patterns (an independent definition): every finite code
// must round to itself, and midpoints must go to the neighbour with an even mantissa.
TEST(KvFormats, Fp8E4M3RoundsToItsOwnGrid) {
  std::vector<float> grid;
  for (int code = 0; code < 128; ++code) {
    const int e = code >> 3, m = code & 7;
    if (e == 15 && m == 7) continue;  // NaN in e4m3fn
    grid.push_back(e == 0 ? std::ldexp(float(m), -9) : std::ldexp(1.0f + m / 8.0f, e - 7));
  }
  EXPECT_EQ(grid.back(), 448.0f);
  for (float g : grid) {
    EXPECT_EQ(fp8_e4m3_round(g), g);
    EXPECT_EQ(fp8_e4m3_round(-g), -g);
  }
  for (size_t i = 0; i + 1 < grid.size(); ++i) {
    const float mid = 0.5f * (grid[i] + grid[i + 1]);
    const bool lower_even = (i % 2) == 0;  // codes alternate even/odd mantissas
    EXPECT_EQ(fp8_e4m3_round(mid), lower_even ? grid[i] : grid[i + 1]) << mid;
    EXPECT_EQ(fp8_e4m3_round(std::nextafter(mid, 0.0f)), grid[i]);
    EXPECT_EQ(fp8_e4m3_round(std::nextafter(mid, 1e9f)), grid[i + 1]);
  }
  EXPECT_EQ(fp8_e4m3_round(1e6f), 448.0f);  // saturating
  EXPECT_EQ(int8_roundtrip(200.0f, 1.0f), 127.0f);
  EXPECT_EQ(int8_roundtrip(2.5f, 1.0f), 2.0f);  // ties to even
}

// The failure mode the issue is about: one outlier key channel (a 96.5x k_norm gain) sets a
// per-tensor int8 scale and crushes every other channel; per-channel scales do not.
TEST(KvFormats, PerTensorInt8IsCrushedByAnOutlierChannel) {
  const int64_t hd = 64, T = 16;
  std::mt19937 rng(6);
  auto k = randn(T * hd, rng, 1.0f);
  for (int64_t t = 0; t < T; ++t) k[t * hd + 5] *= 96.5f;
  auto err_of = [&](KvScale scale) {
    auto backend = make_cpu_backend(1);
    KvCache c(backend, 1, 1, hd, T, ActType::F32, KvFormat::kInt8, scale);
    EXPECT_TRUE(c.reserve_more(T).ok());
    const int32_t pos0 = 0;
    backend->kv_append(c.layer(0), k.data(), k.data(), T, &pos0);
    c.set_size(T);
    std::vector<float> ko(T * hd), vo(T * hd);
    c.load_head(0, 0, T, ko.data(), vo.data());
    double num = 0, den = 0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < hd; ++i)
        if (i != 5)
          num += std::pow(ko[t * hd + i] - k[t * hd + i], 2), den += k[t * hd + i] * k[t * hd + i];
    return std::sqrt(num / den);
  };
  const double per_tensor = err_of(KvScale::kPerTensor), per_channel = err_of(KvScale::kPerChannel);
  EXPECT_GT(per_tensor, 0.3);  // step ~ 96.5 * 3 / 127 against unit-size values
  EXPECT_LT(per_channel, 0.02);
}

}  // namespace
}  // namespace fusecheck::cpu
