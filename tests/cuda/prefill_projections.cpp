// Prefill projections of one Qwen3-0.6B-shaped layer (hidden 1024, q 2048, k/v 1024, FFN 3072,
// bf16 weights) at T prompt tokens, every way the engine can run them: the standard path
// (rmsnorm, then cuBLASLt GEMMs of the bf16-rounded input), the fused GEMV kernels, and the fused
// split GEMMs (split_gemm.cu) in both layouts. Medians of CUDA-event timings over 28 layers'
// weights (so the weights do not sit in the L2), reported per layer. Not a test.
#include <cuda_runtime.h>

#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "bandwidth_tool.h"
#include "kernels/cuda/cuda_ops.h"

namespace cu = fusecheck::cuda;

namespace {

constexpr int64_t kLayers = 28, kDim = 1024, kQ = 2048, kKv = 1024, kFfn = 3072;

struct LayerW {
  cu::DevWeight q, k, v, gate, up;
};

cu::DevWeight weight(int64_t rows, int64_t cols, std::mt19937& g) {
  void* d = bw_dalloc(size_t(rows * cols) * 2);
  bw_fill_bf16(d, size_t(rows * cols), 0.03f, g);
  return {cu::WType::BF16, d, rows, cols};
}

}  // namespace

int prefill_projections_benchmark(cudaStream_t st, std::mt19937& g) {
  std::vector<LayerW> L(kLayers);
  for (LayerW& l : L)
    l = {weight(kQ, kDim, g), weight(kKv, kDim, g), weight(kKv, kDim, g), weight(kFfn, kDim, g),
         weight(kFfn, kDim, g)};
  const int64_t Tmax = 512;
  auto buf = [&](int64_t n) { return static_cast<float*>(bw_dalloc(size_t(n) * 4)); };
  float *x = buf(Tmax * kDim), *xn = buf(Tmax * kDim), *gain = buf(kDim);
  float *q = buf(Tmax * kQ), *k = buf(Tmax * kKv), *v = buf(Tmax * kKv);
  float *gt = buf(Tmax * kFfn), *up = buf(Tmax * kFfn), *out = buf(Tmax * kFfn);
  bw_fill_f32(x, size_t(Tmax * kDim), 1.0f, 0.0f, g);
  bw_fill_f32(gain, size_t(kDim), 0.1f, 1.0f, g);
  cu::GemmContext* ctx = cu::gemm_create(Tmax, 8192, st);
  const cu::Act bf = cu::Act::BF16;
  for (int64_t T : {int64_t{8}, int64_t{128}, int64_t{512}}) {
    auto per_layer = [&](const std::function<void(const LayerW&)>& f) {
      return bw_median_ms(st, 7,
                          [&] {
                            for (const LayerW& l : L) f(l);
                          }) *
             1e3 / kLayers;
    };
    const double std_qkv = per_layer([&](const LayerW& l) {
      BW_CHECK(cu::rmsnorm(xn, x, gain, T, kDim, 1e-6f, bf, st));
      BW_CHECK(cu::gemm(ctx, q, xn, T, l.q, nullptr, bf));
      BW_CHECK(cu::gemm(ctx, k, xn, T, l.k, nullptr, bf));
      BW_CHECK(cu::gemm(ctx, v, xn, T, l.v, nullptr, bf));
    });
    const double gemv_qkv = per_layer([&](const LayerW& l) {
      BW_CHECK(cu::rmsnorm_qkv(q, k, v, x, T, gain, 1e-6f, l.q, l.k, l.v, nullptr, nullptr, nullptr,
                               bf, st));
    });
    double split_qkv[2], split_gu[2];
    for (int m = 0; m < 2; ++m) {
      const auto mode = m == 0 ? cu::SplitGemm::kStacked : cu::SplitGemm::kBetaOne;
      split_qkv[m] = per_layer([&](const LayerW& l) {
        BW_CHECK(cu::rmsnorm_qkv_gemm(ctx, q, k, v, x, T, gain, 1e-6f, l.q, l.k, l.v, nullptr,
                                      nullptr, nullptr, bf, mode));
      });
      // gate_up_silu's engine input is bf16-rounded (exact: one piece); the 3-piece figure is the
      // cost when it is not (an fp32-activation run with bf16 weights).
      split_gu[m] = per_layer([&](const LayerW& l) {
        BW_CHECK(cu::gate_up_silu_gemm(ctx, out, xn, T, l.gate, l.up, bf, false, mode));
      });
    }
    const double std_gu = per_layer([&](const LayerW& l) {
      BW_CHECK(cu::gemm(ctx, gt, xn, T, l.gate, nullptr, bf));
      BW_CHECK(cu::gemm(ctx, up, xn, T, l.up, nullptr, bf));
      BW_CHECK(cu::silu_mul(out, gt, up, T * kFfn, bf, st));
    });
    const double gemv_gu = per_layer(
        [&](const LayerW& l) { BW_CHECK(cu::gate_up_silu(out, xn, T, l.gate, l.up, bf, st)); });
    const double split_gu1 = per_layer([&](const LayerW& l) {
      BW_CHECK(
          cu::gate_up_silu_gemm(ctx, out, xn, T, l.gate, l.up, bf, true, cu::SplitGemm::kStacked));
    });
    std::printf(
        "prefill T=%3ld, us per layer | qkv: standard %7.1f  fused gemv %8.1f  split stacked %7.1f"
        "  split beta1 %7.1f | gate_up: standard %7.1f  fused gemv %8.1f  gemm x1 %7.1f  split "
        "x3 stacked %7.1f  x3 beta1 %7.1f\n",
        long(T), std_qkv, gemv_qkv, split_qkv[0], split_qkv[1], std_gu, gemv_gu, split_gu1,
        split_gu[0], split_gu[1]);
  }
  cu::gemm_destroy(ctx);
  return 0;
}
