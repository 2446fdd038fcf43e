// Measures, in one run on one GPU: the device-to-device copy bandwidth (bytes read + written), the
// contract GEMV's weight bandwidth on decode shapes (weights rotated over copies larger than the
// L2, so every launch reads HBM), each as plain stream launches and as CUDA-graph replays, and a
// whole fused decode step of a Qwen3-0.6B-shaped layer stack on random weights, as a graph.
// Medians of repeated timings with CUDA events. Usage: fusecheck_cuda_bandwidth [--quick]
// --prefill: only the prefill projections' timings (prefill_projections.cpp).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "bandwidth_tool.h"
#include "kernels/cuda/cuda_ops.h"

namespace cu = fusecheck::cuda;

void* bw_dalloc(size_t bytes) {
  void* p = nullptr;
  BW_CHECK(cudaMalloc(&p, bytes));
  return p;
}

// Random bf16 values N(0, scale) (never zeros: they can run faster than real data): one block of
// up to 4 Mi values drawn on the host, repeated over the buffer.
void bw_fill_bf16(void* d, size_t n, float scale, std::mt19937& g) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<uint16_t> h(std::min<size_t>(n, size_t{1} << 22));
  for (uint16_t& v : h) {
    float f = dist(g);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    v = uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  for (size_t done = 0; done < n; done += h.size()) {
    const size_t m = std::min(h.size(), n - done);
    BW_CHECK(cudaMemcpy(static_cast<uint16_t*>(d) + done, h.data(), m * 2, cudaMemcpyHostToDevice));
  }
}
void bw_fill_f32(float* d, size_t n, float scale, float mean, std::mt19937& g) {
  std::normal_distribution<float> dist(mean, scale);
  std::vector<float> h(n);
  for (float& x : h) x = dist(g);
  BW_CHECK(cudaMemcpy(d, h.data(), n * 4, cudaMemcpyHostToDevice));
}

// Median milliseconds of `reps` timings of fn() (each timing one call of fn).
double bw_median_ms(cudaStream_t st, int reps, const std::function<void()>& fn) {
  cudaEvent_t a, b;
  BW_CHECK(cudaEventCreate(&a));
  BW_CHECK(cudaEventCreate(&b));
  fn();  // warm-up
  BW_CHECK(cudaStreamSynchronize(st));
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    BW_CHECK(cudaEventRecord(a, st));
    fn();
    BW_CHECK(cudaEventRecord(b, st));
    BW_CHECK(cudaEventSynchronize(b));
    float t = 0;
    BW_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  BW_CHECK(cudaEventDestroy(a));
  BW_CHECK(cudaEventDestroy(b));
  return ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
}

// Captures fn() into a graph and returns its executable form.
cudaGraphExec_t bw_capture(cudaStream_t st, const std::function<void()>& fn) {
  cudaGraph_t g;
  cudaGraphExec_t ge;
  BW_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  fn();
  BW_CHECK(cudaStreamEndCapture(st, &g));
  BW_CHECK(cudaGraphInstantiate(&ge, g, 0));
  BW_CHECK(cudaGraphDestroy(g));
  return ge;
}

namespace {

double copy_bandwidth(cudaStream_t st, size_t bytes) {
  void* a = bw_dalloc(bytes);
  void* b = bw_dalloc(bytes);
  BW_CHECK(cudaMemset(a, 1, bytes));
  const double ms = bw_median_ms(
      st, 20, [&] { BW_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, st)); });
  BW_CHECK(cudaFree(a));
  BW_CHECK(cudaFree(b));
  return 2.0 * double(bytes) / (ms * 1e-3) / 1e9;
}

// GEMV over `copies` rotated weight copies of [rows, cols] bf16: GB/s of weight bytes, plain
// launches and graph replays of one pass over all copies.
void gemv_bandwidth(cudaStream_t st, int64_t rows, int64_t cols, std::mt19937& g) {
  const size_t wbytes = size_t(rows * cols) * 2;
  const int copies = int(std::max<size_t>(1, (size_t{768} << 20) / wbytes));
  void* w = bw_dalloc(wbytes * size_t(copies));
  bw_fill_bf16(w, size_t(rows * cols) * size_t(copies), 0.02f, g);
  float* x = static_cast<float*>(bw_dalloc(size_t(cols) * 4));
  float* out = static_cast<float*>(bw_dalloc(size_t(rows) * 4));
  bw_fill_f32(x, size_t(cols), 1.0f, 0.0f, g);
  const double bytes = double(wbytes) * copies;
  const char* names[] = {"", "u8 x-early", "u16 x-early", "staged"};
  for (int vi = 1; vi <= 3; ++vi) {
    auto pass = [&] {
      for (int c = 0; c < copies; ++c)
        BW_CHECK(cu::gemv(out, x, 1,
                          {cu::WType::BF16, static_cast<char*>(w) + size_t(c) * wbytes, rows, cols},
                          nullptr, cu::Act::BF16, st, static_cast<cu::GemvVariant>(vi)));
    };
    const double ms = bw_median_ms(st, 7, pass);
    cudaGraphExec_t ge = bw_capture(st, pass);
    const double gms = bw_median_ms(st, 7, [&] { BW_CHECK(cudaGraphLaunch(ge, st)); });
    BW_CHECK(cudaGraphExecDestroy(ge));
    std::printf(
        "gemv bf16 [%6ld, %5ld] %6.1f MB x %3d, %-11s: %7.2f us/launch %7.1f GB/s | "
        "graph %7.2f us %7.1f GB/s\n",
        long(rows), long(cols), wbytes / 1e6, copies, names[vi], ms * 1e3 / copies,
        bytes / (ms * 1e-3) / 1e9, gms * 1e3 / copies, bytes / (gms * 1e-3) / 1e9);
  }
  BW_CHECK(cudaFree(w));
  BW_CHECK(cudaFree(x));
  BW_CHECK(cudaFree(out));
}

}  // namespace

int decode_step_benchmark(cudaStream_t st, double copy_gbs, std::mt19937& g);  // decode_step.cpp
int prefill_projections_benchmark(cudaStream_t st, std::mt19937& g);  // prefill_projections.cpp

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool prefill = argc > 1 && std::strcmp(argv[1], "--prefill") == 0;
  if (cu::device_count() == 0) {
    std::printf("no CUDA GPU present; nothing measured\n");
    return 0;
  }
  cudaDeviceProp p{};
  BW_CHECK(cudaGetDeviceProperties(&p, 0));
  std::printf("device: %s, %d SMs, L2 %d MB\n", p.name, p.multiProcessorCount, p.l2CacheSize >> 20);
  cudaStream_t st;
  BW_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  std::mt19937 g(7);
  if (prefill) return prefill_projections_benchmark(st, g);
  const double copy = copy_bandwidth(st, size_t{2} << 30);
  std::printf("device-to-device copy, 2 GiB, read + write: %.1f GB/s\n", copy);
  const int64_t shapes[][2] = {{151936, 1024}, {8192, 8192}, {2048, 1024}, {1024, 1024},
                               {3072, 1024},   {1024, 3072}, {1024, 2048}};
  for (const auto& s : shapes) {
    if (quick && s[0] == 8192) continue;
    gemv_bandwidth(st, s[0], s[1], g);
  }
  return decode_step_benchmark(st, copy, g);
}
