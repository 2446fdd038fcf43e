// The staged GEMV kernels (gemv.cu) chained on a stream, where each one may start before the
// previous kernel ends (programmatic dependent launch), against the CPU's chain; and the argmax's
// edge cases against the CPU's argmax (model/sampler.h).
#include <algorithm>
#include <memory>
#include <span>

#include "cuda_testing.h"
#include "kernels/cpu/fused.h"
#include "model/sampler.h"

namespace fusecheck {
namespace {

using namespace cudatest;

struct Mat {
  HostWeight h;
  std::unique_ptr<Dev<uint8_t>> d;
  cu::DevWeight dev() const { return {cu::WType::BF16, d->get(), h.rows, h.cols}; }
};
Mat mat(int64_t rows, int64_t cols, std::mt19937& g) {
  Mat m{rand_weight(DType::BF16, rows, cols, g, 0.03f), nullptr};
  m.d = std::make_unique<Dev<uint8_t>>(m.h.bytes);
  return m;
}

// Each kernel reads the previous one's output: a missing or misplaced pdl_wait shows up as a
// read of the NaN poison or of a stale value, so the result would differ from the CPU's.
TEST_F(CudaOps, StagedKernelsChainedOnAStreamMatchCpu) {
  constexpr int64_t D = 1024, Q = 2048, KV = 1024, F = 3072, kRounds = 3;
  std::mt19937 g(21);
  const Mat wq = mat(Q, D, g), wk = mat(KV, D, g), wv = mat(KV, D, g), wo = mat(D, Q, g);
  const Mat wg = mat(F, D, g), wu = mat(F, D, g), wd = mat(D, F, g);
  const auto gain = randv(size_t(D), g, ActType::BF16, 1.0f);
  std::vector<float> h = randv(size_t(D), g, ActType::BF16, 2.0f);
  auto poison = [](int64_t n) { return std::vector<float>(size_t(n), NAN); };
  Dev<float> dh(h), dgain(gain), dq(poison(Q)), dk(poison(KV)), dv(poison(KV)), dy(poison(D)),
      dffn(poison(F));
  cu::Stream st = nullptr;
  CU_OK(cu::stream_create(&st));
  for (int r = 0; r < kRounds; ++r) {
    CU_OK(cu::rmsnorm_qkv(dq.get(), dk.get(), dv.get(), dh.get(), 1, dgain.get(), 1e-6f, wq.dev(),
                          wk.dev(), wv.dev(), nullptr, nullptr, nullptr, cu::Act::BF16, st));
    CU_OK(cu::gemv(dy.get(), dq.get(), 1, wo.dev(), nullptr, cu::Act::BF16, st));
    CU_OK(cu::gate_up_silu(dffn.get(), dy.get(), 1, wg.dev(), wu.dev(), cu::Act::BF16, st));
    CU_OK(cu::gemv(dh.get(), dffn.get(), 1, wd.dev(), nullptr, cu::Act::BF16, st));
  }
  std::vector<float> q(static_cast<size_t>(Q)), k(static_cast<size_t>(KV)),
      v(static_cast<size_t>(KV)), y(static_cast<size_t>(D)), ffn(static_cast<size_t>(F)),
      xn(static_cast<size_t>(D)), gs(static_cast<size_t>(F)), us(static_cast<size_t>(F)),
      scratch(static_cast<size_t>(F));
  for (int r = 0; r < kRounds; ++r) {
    cpu::fused_rmsnorm_qkv(q.data(), k.data(), v.data(), h.data(), 1, gain.data(), 1e-6f,
                           cpu_w(wq.h), cpu_w(wk.h), cpu_w(wv.h), {}, {}, {}, ActType::BF16,
                           xn.data(), nullptr);
    cpu::linear(y.data(), q.data(), 1, cpu_w(wo.h), {}, ActType::BF16, scratch.data());
    cpu::fused_gate_up_silu(ffn.data(), y.data(), 1, cpu_w(wg.h), cpu_w(wu.h), ActType::BF16,
                            gs.data(), us.data(), nullptr);
    cpu::linear(h.data(), ffn.data(), 1, cpu_w(wd.h), {}, ActType::BF16, scratch.data());
  }
  const Cmp ch = compare(dh.host(), h), cv = compare(dv.host(), v);
  CU_OK(cu::stream_destroy(st));
  print("staged chain.h", "bf16 3 rounds of qkv, o, gate_up, down", ch);
  print("staged chain.v", "bf16 3 rounds of qkv, o, gate_up, down", cv);
  EXPECT_EQ(ch.mismatches, 0u);
  EXPECT_EQ(cv.mismatches, 0u);
  EXPECT_TRUE(std::any_of(h.begin(), h.end(), [](float x) { return std::isfinite(x) && x != 0; }));
}

// The CPU's argmax: the first maximum, NaN never chosen, 0 when no value exceeds -inf.
TEST_F(CudaOps, ArgmaxEdgeCasesMatchCpu) {
  std::mt19937 g(22);
  constexpr int64_t n = 151936;
  std::vector<std::vector<float>> cases;
  auto base = [&] { return randv(size_t(n), g, ActType::BF16); };
  cases.push_back(base());
  cases.back()[n - 1] = 50.0f;  // the last element
  cases.push_back(base());
  cases.back()[0] = NAN, cases.back()[5] = 60.0f, cases.back()[n - 2] = 60.0f;
  cases.push_back(std::vector<float>(size_t(n), -INFINITY));
  cases.push_back(std::vector<float>(size_t(n), NAN));
  cases.push_back(std::vector<float>(size_t(n), -INFINITY));
  cases.back()[0] = NAN, cases.back()[77777] = -1e30f;
  cases.push_back(std::vector<float>(size_t(n), 1.0f));  // all equal: index 0
  for (int64_t m : {int64_t(17), int64_t(16385)}) {
    cases.push_back(randv(size_t(m), g, ActType::BF16));
    cases.back()[size_t(m) / 2] = INFINITY;
  }
  for (const auto& x : cases) {
    Dev<float> dx(x);
    Dev<int32_t> dr(1);
    CU_OK(cu::argmax(dr.get(), dx.get(), int64_t(x.size()), nullptr));
    EXPECT_EQ(dr.host()[0], argmax(std::span<const float>(x))) << "n " << x.size();
  }
}

}  // namespace
}  // namespace fusecheck
