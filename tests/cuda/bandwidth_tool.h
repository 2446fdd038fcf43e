// What the bandwidth tool's files (cuda_bandwidth.cpp, decode_step.cpp, prefill_projections.cpp)
// share: device allocation and random fills, CUDA-event timing and graph capture, and a check
// that ends the tool on the first CUDA error. Not a test.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>

#include "kernels/cuda/cuda_ops.h"

#define BW_CHECK(expr)                                                                          \
  do {                                                                                          \
    const int e_ = int(expr);                                                                   \
    if (e_) {                                                                                   \
      std::fprintf(stderr, "%s failed: %s (%s:%d)\n", #expr, fusecheck::cuda::error_string(e_), \
                   __FILE__, __LINE__);                                                         \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

void* bw_dalloc(size_t bytes);
void bw_fill_bf16(void* d, size_t n, float scale, std::mt19937& g);
void bw_fill_f32(float* d, size_t n, float scale, float mean, std::mt19937& g);
double bw_median_ms(cudaStream_t st, int reps, const std::function<void()>& fn);
cudaGraphExec_t bw_capture(cudaStream_t st, const std::function<void()>& fn);
