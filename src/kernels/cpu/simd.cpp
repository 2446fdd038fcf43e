// Dynamic dispatch of the SIMD kernels (simd-inl.h) and the bandwidth probe.
//
// Every attainable x86 target is compiled (SCALAR, SSSE3, SSE4, AVX2, AVX3), not only those better
// than the build's baseline, so the tests can run each code path on this machine
// (hwy::SetSupportedTargetsForTest) and hold it bit-identical to the scalar oracle.
#define HWY_COMPILE_ALL_ATTAINABLE

#include "kernels/cpu/simd.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/simd-inl.h"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/simd-inl.h"

#if HWY_ONCE
namespace fusecheck::cpu {

HWY_EXPORT(LinearImpl);
HWY_EXPORT(DotLanesImpl);
HWY_EXPORT(AddScaledImpl);
HWY_EXPORT(DotRowsImpl);
HWY_EXPORT(AddScaledRowsImpl);
HWY_EXPORT(Bf16ToF32Impl);
HWY_EXPORT(F16ToF32Impl);
HWY_EXPORT(SumImpl);
HWY_EXPORT(TargetNameImpl);

void linear_simd(float* out, const float* x, int64_t T, const Weight& w, const Weight& bias,
                 ActType t, ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(LinearImpl)(out, x, T, w, bias, t, pool);
}

float dot_lanes_simd(const float* a, const float* b, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(DotLanesImpl)(a, b, n);
}

void add_scaled_simd(float* acc, float p, const float* v, int64_t n) {
  HWY_DYNAMIC_DISPATCH(AddScaledImpl)(acc, p, v, n);
}

void bf16_to_f32_simd(const uint16_t* src, int64_t n, float* dst) {
  HWY_DYNAMIC_DISPATCH(Bf16ToF32Impl)(src, n, dst);
}

void f16_to_f32_simd(const uint16_t* src, int64_t n, float* dst) {
  HWY_DYNAMIC_DISPATCH(F16ToF32Impl)(src, n, dst);
}

void attention_head_simd(float* out, const float* q, const KvRows& kv, int64_t n_ctx,
                         int64_t head_dim, float scale, ActType t, float* scores) {
  // The oracle's steps (ops.cpp's attention_head) with the SIMD dot product and P.V update; the
  // softmax is the oracle's own function (std::exp and a double sum).
  // One dispatched call per tile, not per key: a tile's dot products and its P.V updates (the
  // accumulator in registers across the tile's rows) give the per-key results bit for bit.
  int64_t stride = 0;
  const auto dot_rows = HWY_DYNAMIC_DISPATCH(DotRowsImpl);
  for (int64_t j0 = 0; j0 < n_ctx; j0 += kKvTile) {
    const int64_t nb = std::min(kKvTile, n_ctx - j0);
    const float* k = kv.keys(j0, nb, &stride);
    dot_rows(q, k, stride, nb, head_dim, scores + j0);
    for (int64_t b = 0; b < nb; ++b)
      scores[j0 + b] = round_one(t, round_one(t, scores[j0 + b]) * scale);
  }
  softmax_rounded(scores, n_ctx, t);
  std::fill(out, out + head_dim, 0.0f);  // the accumulator, rounded at the end
  const auto add_scaled_rows = HWY_DYNAMIC_DISPATCH(AddScaledRowsImpl);
  for (int64_t j0 = 0; j0 < n_ctx; j0 += kKvTile) {
    const int64_t nb = std::min(kKvTile, n_ctx - j0);
    const float* v = kv.values(j0, nb, &stride);
    add_scaled_rows(out, scores + j0, v, stride, nb, head_dim);
  }
  for (int64_t d = 0; d < head_dim; ++d) out[d] = round_one(t, out[d]);
}

void attention_head_simd(float* out, const float* q, const float* keys, const float* values,
                         int64_t n_ctx, int64_t kv_stride, int64_t head_dim, float scale, ActType t,
                         float* scores) {
  attention_head_simd(out, q, StridedRows(keys, values, kv_stride), n_ctx, head_dim, scale, t,
                      scores);
}

std::vector<int64_t> simd_targets() {
  return hwy::SupportedAndGeneratedTargets();
}

std::vector<std::string> simd_target_names() {
  std::vector<std::string> names;
  for (int64_t t : simd_targets()) names.emplace_back(hwy::TargetName(t));
  return names;
}

bool use_only_simd_target(const std::string& name) {
  for (int64_t t : simd_targets())
    if (name == hwy::TargetName(t)) {
      hwy::DisableTargets(~t);
      return true;
    }
  return false;
}

const char* simd_target_name() {
  return HWY_DYNAMIC_DISPATCH(TargetNameImpl)();
}

double measure_read_bandwidth_gbs(ThreadPool* pool, size_t bytes, int reps) {
  // Whole 64-float blocks (a multiple of 4 vectors on every target), so every chunk sums whole
  // steps; the chunks of parallel_for are contiguous, like a kernel's row slices.
  constexpr size_t kBlock = 64;
  const size_t blocks = std::max<size_t>(1, bytes / sizeof(float) / kBlock);
  auto buf = hwy::AllocateAligned<float>(blocks * kBlock);
  const auto run = [&](const std::function<void(int64_t, int64_t)>& fn) {
    if (pool != nullptr)
      pool->parallel_for(static_cast<int64_t>(blocks), fn);
    else
      fn(0, static_cast<int64_t>(blocks));
  };
  // First touch by the thread that will read each chunk (page placement, no lazy faults later).
  run([&](int64_t b, int64_t e) {
    std::memset(&buf[b * kBlock], 0, static_cast<size_t>(e - b) * kBlock * sizeof(float));
  });
  const auto sum = HWY_DYNAMIC_DISPATCH(SumImpl);
  std::atomic<int64_t> sink{0};  // keeps the sums observable
  double best = 0.0;
  for (int rep = 0; rep < std::max(1, reps); ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    run([&](int64_t b, int64_t e) {
      const float s = sum(&buf[b * kBlock], static_cast<size_t>(e - b) * kBlock);
      sink.fetch_add(static_cast<int64_t>(s), std::memory_order_relaxed);
    });
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(blocks * kBlock * sizeof(float)) / sec / 1e9);
  }
  volatile int64_t keep = sink.load();
  (void)keep;
  return best;
}

}  // namespace fusecheck::cpu
#endif  // HWY_ONCE
