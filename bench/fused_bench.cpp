// Fused kernels against the unfused ops they replace, on Qwen3-0.6B shapes (dim 1024, 16 q heads,
// 8 kv heads, head_dim 128, ffn 3072), one token (decode) and bf16 activations. Each pair runs side
// by side in one process; compare the two times of a pair.
//
//   build/bench/fusecheck_microbench --benchmark_filter='Fused|Unfused' --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/fused.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/simd.h"
#include "util/half.h"

namespace fc = fusecheck;
using fc::cpu::ActType;
using fc::cpu::Weight;

namespace {

constexpr int64_t kDim = 1024, kHeads = 16, kKvHeads = 8, kHeadDim = 128, kFfn = 3072;
constexpr ActType kT = ActType::BF16;

std::vector<float> values(size_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = fc::cpu::round_one(kT, d(rng));
  return v;
}

std::vector<uint16_t> bf16_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  auto v = values(size_t(rows * cols), 0.03f, seed);
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = fc::f32_to_bf16(v[i]);
  return out;
}

void BM_UnfusedAddRmsnorm(benchmark::State& s) {
  auto h = values(kDim, 1, 1), d = values(kDim, 1, 2), g = values(kDim, 1, 3);
  std::vector<float> n(kDim);
  for (auto _ : s) {
    fc::cpu::add(h.data(), h.data(), d.data(), kDim, kT);
    fc::cpu::rmsnorm(n.data(), h.data(), g.data(), kDim, 1e-6f, kT);
    benchmark::DoNotOptimize(n.data());
  }
}
void BM_FusedAddRmsnorm(benchmark::State& s) {
  auto h = values(kDim, 1, 1), d = values(kDim, 1, 2), g = values(kDim, 1, 3);
  std::vector<float> n(kDim);
  for (auto _ : s) {
    fc::cpu::fused_add_rmsnorm(h.data(), d.data(), n.data(), nullptr, g.data(), kDim, 1e-6f, kT);
    benchmark::DoNotOptimize(n.data());
  }
}
BENCHMARK(BM_UnfusedAddRmsnorm);
BENCHMARK(BM_FusedAddRmsnorm);

void BM_UnfusedQkNormRope(benchmark::State& s) {
  auto q = values(kHeads * kHeadDim, 1, 4), g = values(kHeadDim, 1, 5);
  std::vector<float> cs(kHeadDim / 2, 0.6f), sn(kHeadDim / 2, 0.8f);
  for (auto _ : s) {
    for (int64_t h = 0; h < kHeads; ++h) {
      float* x = &q[h * kHeadDim];
      fc::cpu::rmsnorm(x, x, g.data(), kHeadDim, 1e-6f, kT);
      fc::cpu::rope_rotate_half(x, kHeadDim, cs.data(), sn.data(), kT);
    }
    benchmark::DoNotOptimize(q.data());
  }
}
void BM_FusedQkNormRope(benchmark::State& s) {
  auto q = values(kHeads * kHeadDim, 1, 4), g = values(kHeadDim, 1, 5);
  std::vector<float> cs(kHeadDim / 2, 0.6f), sn(kHeadDim / 2, 0.8f);
  for (auto _ : s) {
    fc::cpu::fused_qk_norm_rope(q.data(), kHeads, kHeadDim, g.data(), 1e-6f, cs.data(), sn.data(),
                                kT);
    benchmark::DoNotOptimize(q.data());
  }
}
BENCHMARK(BM_UnfusedQkNormRope);
BENCHMARK(BM_FusedQkNormRope);

// One query head over n_ctx cached positions.
void BM_UnfusedAttention(benchmark::State& s) {
  const int64_t n = s.range(0);
  auto q = values(kHeadDim, 1, 6), k = values(size_t(n * kHeadDim), 1, 7),
       v = values(size_t(n * kHeadDim), 1, 8);
  std::vector<float> out(kHeadDim), scores(static_cast<size_t>(n));
  for (auto _ : s) {
    fc::cpu::attention_head_simd(out.data(), q.data(), k.data(), v.data(), n, kHeadDim, kHeadDim,
                                 0.088f, kT, scores.data());
    benchmark::DoNotOptimize(out.data());
  }
}
void BM_FusedAttention(benchmark::State& s) {
  const int64_t n = s.range(0);
  auto q = values(kHeadDim, 1, 6), k = values(size_t(n * kHeadDim), 1, 7),
       v = values(size_t(n * kHeadDim), 1, 8);
  std::vector<float> out(kHeadDim), acc(kHeadDim);
  for (auto _ : s) {
    fc::cpu::fused_attention(out.data(), q.data(), k.data(), v.data(), n, kHeadDim, kHeadDim,
                             0.088f, kT, false, acc.data());
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_UnfusedAttention)->Arg(128)->Arg(1024);
BENCHMARK(BM_FusedAttention)->Arg(128)->Arg(1024);

// RMSNorm + q/k/v projections (the weights are small enough to stay in cache here, so this
// measures compute, not DRAM streaming).
void BM_UnfusedRmsnormQkv(benchmark::State& s) {
  auto x = values(kDim, 1, 9), g = values(kDim, 1, 10);
  auto wq = bf16_matrix(kHeads * kHeadDim, kDim, 11),
       wk = bf16_matrix(kKvHeads * kHeadDim, kDim, 12),
       wv = bf16_matrix(kKvHeads * kHeadDim, kDim, 13);
  Weight Wq{fc::DType::BF16, wq.data(), kHeads * kHeadDim, kDim},
      Wk{fc::DType::BF16, wk.data(), kKvHeads * kHeadDim, kDim},
      Wv{fc::DType::BF16, wv.data(), kKvHeads * kHeadDim, kDim};
  std::vector<float> n(kDim), q(kHeads * kHeadDim), k(kKvHeads * kHeadDim), v(kKvHeads * kHeadDim);
  for (auto _ : s) {
    fc::cpu::rmsnorm(n.data(), x.data(), g.data(), kDim, 1e-6f, kT);
    fc::cpu::linear_simd(q.data(), n.data(), 1, Wq, Weight{}, kT, nullptr);
    fc::cpu::linear_simd(k.data(), n.data(), 1, Wk, Weight{}, kT, nullptr);
    fc::cpu::linear_simd(v.data(), n.data(), 1, Wv, Weight{}, kT, nullptr);
    benchmark::DoNotOptimize(v.data());
  }
}
void BM_FusedRmsnormQkv(benchmark::State& s) {
  auto x = values(kDim, 1, 9), g = values(kDim, 1, 10);
  auto wq = bf16_matrix(kHeads * kHeadDim, kDim, 11),
       wk = bf16_matrix(kKvHeads * kHeadDim, kDim, 12),
       wv = bf16_matrix(kKvHeads * kHeadDim, kDim, 13);
  Weight Wq{fc::DType::BF16, wq.data(), kHeads * kHeadDim, kDim},
      Wk{fc::DType::BF16, wk.data(), kKvHeads * kHeadDim, kDim},
      Wv{fc::DType::BF16, wv.data(), kKvHeads * kHeadDim, kDim};
  std::vector<float> xn(kDim), q(kHeads * kHeadDim), k(kKvHeads * kHeadDim), v(kKvHeads * kHeadDim);
  for (auto _ : s) {
    fc::cpu::fused_rmsnorm_qkv(q.data(), k.data(), v.data(), x.data(), 1, g.data(), 1e-6f, Wq, Wk,
                               Wv, Weight{}, Weight{}, Weight{}, kT, xn.data(), nullptr);
    benchmark::DoNotOptimize(v.data());
  }
}
BENCHMARK(BM_UnfusedRmsnormQkv);
BENCHMARK(BM_FusedRmsnormQkv);

void BM_UnfusedGateUpSilu(benchmark::State& s) {
  auto x = values(kDim, 1, 14);
  auto wg = bf16_matrix(kFfn, kDim, 15), wu = bf16_matrix(kFfn, kDim, 16);
  Weight Wg{fc::DType::BF16, wg.data(), kFfn, kDim}, Wu{fc::DType::BF16, wu.data(), kFfn, kDim};
  std::vector<float> g(kFfn), u(kFfn), out(kFfn);
  for (auto _ : s) {
    fc::cpu::linear_simd(g.data(), x.data(), 1, Wg, Weight{}, kT, nullptr);
    fc::cpu::linear_simd(u.data(), x.data(), 1, Wu, Weight{}, kT, nullptr);
    fc::cpu::silu_mul(out.data(), g.data(), u.data(), kFfn, kT);
    benchmark::DoNotOptimize(out.data());
  }
}
void BM_FusedGateUpSilu(benchmark::State& s) {
  auto x = values(kDim, 1, 14);
  auto wg = bf16_matrix(kFfn, kDim, 15), wu = bf16_matrix(kFfn, kDim, 16);
  Weight Wg{fc::DType::BF16, wg.data(), kFfn, kDim}, Wu{fc::DType::BF16, wu.data(), kFfn, kDim};
  std::vector<float> g(kFfn), u(kFfn), out(kFfn);
  for (auto _ : s) {
    fc::cpu::fused_gate_up_silu(out.data(), x.data(), 1, Wg, Wu, kT, g.data(), u.data(), nullptr);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_UnfusedGateUpSilu);
BENCHMARK(BM_FusedGateUpSilu);

}  // namespace
