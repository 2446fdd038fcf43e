// Kernel microbenchmarks: scalar oracle vs SIMD, 1 vs 2 threads, on Qwen3-0.6B shapes.
//
//   build/bench/fusecheck_microbench [--target=AVX2] [benchmark flags]
//
// --target forces one Highway target (names as hwy::TargetName prints them) for the SIMD kernels.
// GEMV weights rotate over copies totalling >= 512 MiB, so every call streams its matrix from DRAM
// as decode does (all layers' weights are far larger than the L3); GB/s counters are weight bytes
// per second. GEMM counters are GFLOP/s (2 T rows cols per call). BM_ReadBandwidth is the
// reference: the probe's best-of-5 streaming read rate.
#include <benchmark/benchmark.h>
#include <hwy/targets.h>

#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/gemm_bf16dot.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"
#include "util/half.h"

namespace fc = fusecheck;
using fc::cpu::ActType;
using fc::cpu::ThreadPool;
using fc::cpu::Weight;

namespace {

// The benchmark process's pools and weights, created on first use (benchmarks run serially).
ThreadPool* pool_for(int threads) {
  static std::map<int, std::unique_ptr<ThreadPool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<ThreadPool>(threads);
  return p.get();
}

// `copies` bf16 matrices [rows, cols] of random values, one allocation.
struct Matrices {
  std::vector<uint16_t> data;
  int64_t rows = 0, cols = 0, copies = 0;
  Weight at(int64_t i) const {
    return Weight{fc::DType::BF16, data.data() + (i % copies) * rows * cols, rows, cols};
  }
};

const Matrices& matrices(int64_t rows, int64_t cols, bool rotate) {
  static std::map<std::tuple<int64_t, int64_t, bool>, Matrices> cache;
  Matrices& m = cache[{rows, cols, rotate}];
  if (m.copies == 0) {
    const int64_t bytes = rows * cols * 2;
    m.rows = rows;
    m.cols = cols;
    m.copies = rotate ? std::max<int64_t>(1, (int64_t{512} << 20) / bytes) : 1;
    m.data.resize(static_cast<size_t>(m.copies * rows * cols));
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (auto& h : m.data) h = fc::f32_to_bf16(normal(rng));
  }
  return m;
}

std::vector<float> activations(int64_t n) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = fc::bf16_to_f32(fc::f32_to_bf16(normal(rng)));
  return x;
}

// Scalar oracle, rows split over the pool for T == 1 (out rows are contiguous then).
void scalar_linear(float* out, const float* x, int64_t T, const Weight& w, ThreadPool* pool,
                   std::vector<std::vector<float>>& scratch) {
  if (T != 1 || pool == nullptr) {
    fc::cpu::linear(out, x, T, w, Weight{}, ActType::BF16, scratch[0].data());
    return;
  }
  pool->parallel_for(pool->threads(), [&](int64_t b, int64_t) {
    const int64_t r0 = w.rows * b / pool->threads(), r1 = w.rows * (b + 1) / pool->threads();
    const Weight slice{w.dtype, static_cast<const uint16_t*>(w.data) + r0 * w.cols, r1 - r0,
                       w.cols};
    fc::cpu::linear(out + r0, x, 1, slice, Weight{}, ActType::BF16,
                    scratch[static_cast<size_t>(b)].data());
  });
}

// args: rows, cols, T, threads, simd (0: the scalar oracle, 1: the SIMD contract kernel, 2: the
// opt-in bf16-pair dot, --dot bf16-pairs)
void BM_Linear(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1), T = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const bool simd = state.range(4) != 0, pairs = state.range(4) == 2;
  const Matrices& m = matrices(rows, cols, /*rotate=*/T == 1);
  const auto x = activations(T * cols);
  std::vector<float> out(static_cast<size_t>(T * rows));
  std::vector<std::vector<float>> scratch(static_cast<size_t>(threads),
                                          std::vector<float>(static_cast<size_t>(cols)));
  ThreadPool* pool = pool_for(threads);
  int64_t i = 0;
  for (auto _ : state) {
    const Weight w = m.at(i++);
    if (pairs)
      fc::cpu::linear_bf16dot(out.data(), x.data(), T, w, Weight{}, ActType::BF16, pool);
    else if (simd)
      fc::cpu::linear_simd(out.data(), x.data(), T, w, Weight{}, ActType::BF16, pool);
    else
      scalar_linear(out.data(), x.data(), T, w, pool, scratch);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double calls = static_cast<double>(state.iterations());
  state.counters["GB"] = benchmark::Counter(calls * static_cast<double>(rows * cols * 2) / 1e9,
                                            benchmark::Counter::kIsRate);
  state.counters["GFLOP"] = benchmark::Counter(
      calls * 2.0 * static_cast<double>(T * rows * cols) / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(pairs  ? "bf16-pairs " + fc::cpu::bf16dot_impl_name()
                 : simd ? std::string(fc::cpu::simd_target_name())
                        : std::string("scalar"));
}

void GemvArgs(benchmark::internal::Benchmark* b) {
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{
           {2048, 1024}, {1024, 1024}, {3072, 1024}, {1024, 3072}, {151936, 1024}})
    for (int threads : {1, 2})
      for (int simd : {0, 1, 2}) b->Args({rows, cols, 1, threads, simd});
  b->ArgNames({"rows", "cols", "T", "threads", "simd"})
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_Linear)->Name("BM_Gemv")->Apply(GemvArgs);

void GemmArgs(benchmark::internal::Benchmark* b) {
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{
           {2048, 1024}, {1024, 1024}, {3072, 1024}, {1024, 3072}}) {
    // The scalar oracle is single-threaded for T > 1 (scalar_linear splits rows only for T == 1).
    b->Args({rows, cols, 128, 1, 0});
    for (int threads : {1, 2})
      for (int simd : {1, 2}) b->Args({rows, cols, 128, threads, simd});
  }
  b->ArgNames({"rows", "cols", "T", "threads", "simd"})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_Linear)->Name("BM_Gemm")->Apply(GemmArgs);

// args: n, simd
void BM_Dot(benchmark::State& state) {
  const int64_t n = state.range(0);
  const bool simd = state.range(1) != 0;
  const auto a = activations(n), b = activations(n + 1);
  for (auto _ : state) {
    float s = simd ? fc::cpu::dot_lanes_simd(a.data(), b.data() + 1, n)
                   : fc::cpu::dot_lanes(a.data(), b.data() + 1, n);
    benchmark::DoNotOptimize(s);
  }
  state.counters["GFLOP"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 2.0 * static_cast<double>(n) / 1e9,
      benchmark::Counter::kIsRate);
  state.SetLabel(simd ? fc::cpu::simd_target_name() : "scalar");
}
BENCHMARK(BM_Dot)->ArgsProduct({{128, 1024}, {0, 1}})->ArgNames({"n", "simd"});

// One query head over n_ctx cached positions (head_dim 128, GQA stride of 8 kv heads); args:
// n_ctx, simd.
void BM_AttentionHead(benchmark::State& state) {
  const int64_t n_ctx = state.range(0), hd = 128, stride = 8 * hd;
  const bool simd = state.range(1) != 0;
  const auto q = activations(hd), kv = activations(n_ctx * stride);
  std::vector<float> out(hd), scores(static_cast<size_t>(n_ctx));
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (auto _ : state) {
    if (simd)
      fc::cpu::attention_head_simd(out.data(), q.data(), kv.data(), kv.data(), n_ctx, stride, hd,
                                   scale, ActType::BF16, scores.data());
    else
      fc::cpu::attention_head(out.data(), q.data(), kv.data(), kv.data(), n_ctx, stride, hd, scale,
                              ActType::BF16, scores.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(simd ? fc::cpu::simd_target_name() : "scalar");
}
BENCHMARK(BM_AttentionHead)
    ->ArgsProduct({{512}, {0, 1}})
    ->ArgNames({"n_ctx", "simd"})
    ->Unit(benchmark::kMicrosecond);

// args: threads. One probe (512 MiB, best of 5) per iteration.
void BM_ReadBandwidth(benchmark::State& state) {
  ThreadPool* pool = pool_for(static_cast<int>(state.range(0)));
  double gbs = 0.0;
  for (auto _ : state) gbs = fc::cpu::measure_read_bandwidth_gbs(pool);
  state.counters["GB/s"] = gbs;
  state.SetLabel(fc::cpu::simd_target_name());
}
BENCHMARK(BM_ReadBandwidth)
    ->Arg(1)
    ->Arg(2)
    ->ArgName("threads")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  // --target=NAME: force one Highway target for the SIMD kernels.
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--target=", 0) != 0) {
      rest.push_back(argv[i]);
      continue;
    }
    const std::string name = arg.substr(9);
    bool found = false;
    for (int64_t t : fc::cpu::simd_targets())
      if (name == hwy::TargetName(t)) {
        hwy::SetSupportedTargetsForTest(t);
        found = true;
      }
    if (!found) {
      std::fprintf(stderr, "unknown or unsupported target %s\n", name.c_str());
      return 64;
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 64;
  benchmark::AddCustomContext("simd_target", fc::cpu::simd_target_name());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
