// The bf16-pair dot (--dot bf16-pairs, kernels/cpu/gemm_bf16dot.h): the AVX512-BF16 kernel and the
// Highway emulation on every target against the scalar definition by NMSE over swept shapes (the
// lane order differs by ISA, so not bit for bit), the definition itself against a double-precision
// sum, the engine's greedy tokens with the choice against transformers' (tests/data/hf), and the
// refusals (weights that are not bf16, the CUDA device, the fp32 reference path).
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "io/safetensors.h"
#include "kernels/cpu/gemm_bf16dot.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"
#include "model/model.h"
#include "testing.h"
#include "util/half.h"

namespace fusecheck::cpu {
namespace {

struct TargetScope {
  explicit TargetScope(int64_t target) { hwy::SetSupportedTargetsForTest(target); }
  ~TargetScope() { hwy::SetSupportedTargetsForTest(0); }
};

// bf16 weights [rows, cols] stored `offset` elements past an aligned start, owning their bytes.
struct Bf16Weight {
  std::vector<uint16_t> bits;
  Weight w;
};
Bf16Weight make_weight(int64_t rows, int64_t cols, int offset, std::mt19937_64& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  Bf16Weight b;
  b.bits.assign(static_cast<size_t>(rows * cols + offset), 0);
  for (int64_t i = 0; i < rows * cols; ++i)
    b.bits[static_cast<size_t>(offset + i)] = f32_to_bf16(d(rng));
  b.w = Weight{DType::BF16, b.bits.data() + offset, rows, cols};
  return b;
}

// Activations that are not bf16 values (the kernel must round them) over a range of exponents.
std::vector<float> make_x(int64_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::uniform_int_distribution<int> e(-4, 4);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = std::ldexp(d(rng), e(rng));
  return x;
}

// sum |a - b|^2 / sum |b|^2.
double nmse(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? num / den : num;
}

// Every output is an fp32 sum of K exact products in another order than the definition's: each
// differs by at most about K * 2^-24 of the sum of |products|; with K <= 1100 and random signs the
// NMSE stays far below 1e-9 (a wrong lane, a lost pair or an unrounded x gives 1e-6 and more).
constexpr double kMaxNmse = 1e-9;

struct Shape {
  int64_t T, rows, cols;
};
const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {
      {1, 1, 1},     {1, 3, 2},     {2, 5, 31},      {3, 4, 32},   {5, 7, 33},    {6, 12, 64},
      {7, 13, 95},   {1, 37, 1024}, {13, 29, 257},   {31, 17, 96}, {64, 24, 130}, {127, 9, 63},
      {130, 50, 64}, {129, 11, 1},  {17, 100, 1100}, {2, 300, 40}, {12, 4, 1023}};
  return s;
}

void sweep(Bf16DotImpl impl, ThreadPool* pool, const std::string& what) {
  std::mt19937_64 rng(11);
  for (const Shape& s : shapes())
    for (int offset : {0, 1}) {
      Bf16Weight w = make_weight(s.rows, s.cols, offset, rng);
      const std::vector<float> x = make_x(s.T * s.cols, rng);
      std::vector<float> bias = make_x(s.rows, rng);
      const Weight b{DType::F32, bias.data(), 1, s.rows};
      for (const bool with_bias : {false, true}) {
        std::vector<float> got(static_cast<size_t>(s.T * s.rows), NAN), want(got.size(), NAN);
        const Weight& bb = with_bias ? b : Weight{};
        linear_bf16dot(got.data(), x.data(), s.T, w.w, bb, ActType::F32, pool, impl);
        linear_bf16dot_reference(want.data(), x.data(), s.T, w.w, bb, ActType::F32);
        EXPECT_LT(nmse(got, want), kMaxNmse)
            << what << " T=" << s.T << " rows=" << s.rows << " cols=" << s.cols
            << " offset=" << offset << " bias=" << with_bias;
        // bf16 outputs: at most one bf16 ulp apart (a sum near a rounding boundary).
        std::vector<float> g16(got.size()), w16(got.size());
        linear_bf16dot(g16.data(), x.data(), s.T, w.w, bb, ActType::BF16, pool, impl);
        linear_bf16dot_reference(w16.data(), x.data(), s.T, w.w, bb, ActType::BF16);
        for (size_t i = 0; i < g16.size(); ++i)
          ASSERT_LE(std::fabs(g16[i] - w16[i]), std::ldexp(std::fabs(w16[i]), -7) + 1e-30)
              << what << " output " << i << " cols=" << s.cols;
      }
    }
}

TEST(Bf16Dot, NativeKernelAgreesWithDefinitionByNmse) {
  if (!bf16dot_native_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  EXPECT_EQ(bf16dot_impl_name(), "avx512-bf16");
  sweep(Bf16DotImpl::kNative, nullptr, "avx512-bf16");
  ThreadPool pool(3);
  sweep(Bf16DotImpl::kNative, &pool, "avx512-bf16, 3 threads");
}

TEST(Bf16Dot, EmulationAgreesWithDefinitionOnEveryTarget) {
  const std::vector<int64_t> targets = simd_targets();
  ASSERT_FALSE(targets.empty());
  for (int64_t t : targets) {
    TargetScope scope(t);
    sweep(Bf16DotImpl::kEmulated, nullptr, std::string("emulated ") + hwy::TargetName(t));
  }
}

// The definition, independently: the exact sum (double) of bf16(x) * w over the row, within fp32
// summation error; and x is rounded to bf16 (round to nearest even) before the products.
TEST(Bf16Dot, DefinitionMatchesExactSumOfRoundedProducts) {
  std::mt19937_64 rng(5);
  for (int64_t cols : {1, 2, 33, 300, 1024}) {
    Bf16Weight w = make_weight(7, cols, 0, rng);
    const std::vector<float> x = make_x(3 * cols, rng);
    std::vector<float> got(21);
    linear_bf16dot_reference(got.data(), x.data(), 3, w.w, Weight{}, ActType::F32);
    std::vector<float> exact(21);
    for (int64_t t = 0; t < 3; ++t)
      for (int64_t r = 0; r < 7; ++r) {
        double s = 0;
        for (int64_t i = 0; i < cols; ++i)
          s += double(bf16_to_f32(f32_to_bf16(x[t * cols + i]))) *
               bf16_to_f32(w.bits[static_cast<size_t>(r * cols + i)]);
        exact[t * 7 + r] = static_cast<float>(s);
      }
    EXPECT_LT(nmse(got, exact), 1e-10) << cols;
  }
  // bf16 keeps 7 fraction bits (an ulp of 2^-7 at 1): 1 + 2^-9 rounds down to 1 and
  // 1 + 3 * 2^-9 up to 1 + 2^-7.
  const int64_t n = 64;
  std::vector<uint16_t> ones(n, f32_to_bf16(1.0f));
  const Weight w1{DType::BF16, ones.data(), 1, n};
  std::vector<float> xa(n, 1.0f + std::ldexp(1.0f, -9)), xb(n, 1.0f + 3 * std::ldexp(1.0f, -9));
  float ra = 0, rb = 0, na = 0;
  linear_bf16dot_reference(&ra, xa.data(), 1, w1, Weight{}, ActType::F32);
  linear_bf16dot_reference(&rb, xb.data(), 1, w1, Weight{}, ActType::F32);
  linear_bf16dot(&na, xa.data(), 1, w1, Weight{}, ActType::F32, nullptr);
  EXPECT_EQ(ra, 64.0f);
  EXPECT_EQ(rb, 64.0f * (1.0f + std::ldexp(1.0f, -7)));
  EXPECT_EQ(na, 64.0f);
  // The contract (fp32 x) keeps the low bits: it is another arithmetic.
  EXPECT_NE(dot_lanes_simd(xa.data(), std::vector<float>(n, 1.0f).data(), n), 64.0f);
}

}  // namespace
}  // namespace fusecheck::cpu

namespace fusecheck {
namespace {

using json = nlohmann::json;

int32_t argmax(const std::vector<float>& x) {
  return static_cast<int32_t>(std::max_element(x.begin(), x.end()) - x.begin());
}

// Greedy through the KV cache with --dot bf16-pairs on the bf16 checkpoints, against transformers'
// bf16 greedy tokens (reference_ext.json). The pair dot sums in another order than transformers'
// (and than the contract's), so a bf16 rounding may land on the other side of a boundary; that can
// change a greedy token only at a near-tie, so a divergence must be one: transformers' token
// scores within 4 bf16 ulps of our top token (the allowance of the standard path's own test).
class Bf16DotOracle : public ::testing::TestWithParam<const char*> {};

TEST_P(Bf16DotOracle, GreedyTokensMatchTransformersUpToNearTies) {
  const std::string dir = testing::data_dir() + "/hf/" + GetParam();
  auto m = Model::load(dir + "/bf16");
  ASSERT_TRUE(m.ok()) << m.error().message;
  const json ref = json::parse(testing::read_text(dir + "/reference_ext.json"));
  KernelPlan plan = m->standard_plan();
  plan.dot = DotChoice::kBf16Pairs;
  size_t steps = 0, differing_logits = 0;
  for (size_t i = 0; i < ref["greedy_bf16"].size(); ++i) {
    const auto want = ref["greedy_bf16"][i].get<std::vector<int32_t>>();
    const auto prompt = ref["sequences"][i].get<std::vector<int32_t>>();
    KvCache cache = m->new_cache(Precision::kModel, 0, &plan);
    KvCache cache_c = m->new_cache(Precision::kModel, 0);
    std::vector<float> logits, contract;
    ASSERT_TRUE(
        m->forward(prompt, Precision::kModel, cache, LogitsFor::kLast, logits, nullptr, &plan)
            .ok());
    ASSERT_TRUE(m->forward(prompt, Precision::kModel, cache_c, LogitsFor::kLast, contract).ok());
    for (size_t k = 0; k < logits.size(); ++k) differing_logits += logits[k] != contract[k];
    for (size_t step = 0; step < want.size(); ++step, ++steps) {
      const int32_t ours = argmax(logits);
      if (ours != want[step]) {
        const float top = logits[ours], theirs = logits[want[step]];
        std::printf("[ %s ] sequence %zu: bf16-pairs greedy diverges at step %zu, margin %.4g\n",
                    GetParam(), i, step, top - theirs);
        EXPECT_LE(top - theirs, 4 * std::ldexp(std::fabs(top), -8)) << "sequence " << i;
        break;
      }
      int32_t next = ours;
      ASSERT_TRUE(
          m->forward({&next, 1}, Precision::kModel, cache, LogitsFor::kLast, logits, nullptr, &plan)
              .ok());
    }
  }
  EXPECT_GT(steps, 20u);
  // The choice took effect: another summation order moves some bf16 roundings of the logits.
  EXPECT_GT(differing_logits, 0u);
  std::printf("[ %s ] %zu of the prompts' last-position logits differ from the contract's\n",
              GetParam(), differing_logits);
}

INSTANTIATE_TEST_SUITE_P(Hf, Bf16DotOracle, ::testing::Values("qwen3-tiny", "llama-tiny"));

// The refusals, through the CLI: one line, the documented exit code.
TEST(Bf16DotCli, RefusedForFp32WeightsOnCudaAndOnTheFp32Path) {
  const std::string hf = testing::data_dir() + "/hf/qwen3-tiny";
  auto f32 = testing::run_cli("generate " + hf + "/fp32 --token-ids 1,2,3 -n 2 --dot bf16-pairs");
  EXPECT_EQ(f32.exit_code, 3) << f32.err;
  EXPECT_NE(f32.err.find("runs on bf16 weights only; this checkpoint's are f32"), std::string::npos)
      << f32.err;
  auto cuda = testing::run_cli("bench " + hf + "/bf16 --device cuda --dot bf16-pairs");
  EXPECT_EQ(cuda.exit_code, 64) << cuda.err;
  EXPECT_NE(cuda.err.find("the CUDA backend runs the contract dot product only"), std::string::npos)
      << cuda.err;
  testing::TempDir tmp;
  auto fp32 = testing::run_cli("eval " + hf + "/bf16 --token-ids 1,2 --out " +
                               (tmp / "o.safetensors") + " --precision fp32 --dot bf16-pairs");
  EXPECT_EQ(fp32.exit_code, 64) << fp32.err;
  EXPECT_NE(fp32.err.find("the fp32 reference path always runs the contract"), std::string::npos)
      << fp32.err;
  auto unknown = testing::run_cli("bench " + hf + "/bf16 --dot fast --repeat 1");
  EXPECT_EQ(unknown.exit_code, 3) << unknown.err;
  EXPECT_NE(unknown.err.find("known: contract, bf16-pairs"), std::string::npos) << unknown.err;
  auto probe = testing::run_cli("probe " + hf + "/bf16 --device cuda --dot bf16-pairs");
  EXPECT_EQ(probe.exit_code, 64) << probe.err;
}

// bench --json names the dot product; the bf16-pairs run names its implementation.
TEST(Bf16DotCli, BenchJsonReportsTheDot) {
  const std::string bf16 = testing::data_dir() + "/hf/qwen3-tiny/bf16";
  auto r = testing::run_cli("bench " + bf16 +
                            " --dot bf16-pairs --prompt-tokens 8 --gen-tokens 2 --repeat 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["dot"], "bf16-pairs");
  EXPECT_EQ(j["dot_impl"], cpu::bf16dot_impl_name());
  auto c =
      testing::run_cli("bench " + bf16 + " --prompt-tokens 8 --gen-tokens 2 --repeat 1 --json");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(json::parse(c.out)["dot"], "contract");
}

}  // namespace
}  // namespace fusecheck
