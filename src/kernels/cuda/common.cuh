// Device helpers shared by the CUDA kernels: rounding to the activation type bit for bit as
// util/half.h does on the CPU, weight and KV element loads, warp reductions.
// The CUDA sources are compiled with --fmad=false: a multiply and an add stay two roundings unless
// the code calls fmaf, exactly as the CPU oracle (built with -ffp-contract=off) computes them.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_ops.h"

namespace fusecheck::cuda {

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) {
  return __uint_as_float(uint32_t(h) << 16);
}
// Round to nearest even, NaN kept quiet: the same bit arithmetic as util/half.h's f32_to_bf16.
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
__device__ __forceinline__ float round_act(Act t, float x) {
  if (t == Act::BF16) return bf16_bits_to_f32(f32_to_bf16_bits(x));
  if (t == Act::F16) return __half2float(__float2half_rn(x));  // IEEE RNE, as half.h
  return x;
}

// Element i of a weight (or KV) row widened exactly to fp32.
template <WType W>
__device__ __forceinline__ float load_w(const void* p, int64_t i) {
  if constexpr (W == WType::BF16)
    return bf16_bits_to_f32(static_cast<const uint16_t*>(p)[i]);
  else if constexpr (W == WType::F16)
    return __half2float(static_cast<const __half*>(p)[i]);
  else
    return static_cast<const float*>(p)[i];
}
__device__ __forceinline__ float load_w_rt(WType w, const void* p, int64_t i) {
  if (w == WType::BF16) return load_w<WType::BF16>(p, i);
  if (w == WType::F16) return load_w<WType::F16>(p, i);
  return load_w<WType::F32>(p, i);
}

// fp8 e4m3 ("fn") bits to fp32 and back with saturation to ±448, round to nearest even.
__device__ __forceinline__ float fp8_to_f32(uint8_t b) {
  __nv_fp8_e4m3 v;
  v.__x = b;
  return float(v);
}
__device__ __forceinline__ uint8_t f32_to_fp8(float x) {
  return __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
}

// One cached value at flat index i (row · kv_dim + c), dequantised.
__device__ __forceinline__ float kv_load(const KvView& kv, int64_t i, int64_t c) {
  switch (kv.type) {
    case KvType::F32:
      return static_cast<const float*>(kv.data)[i];
    case KvType::BF16:
      return bf16_bits_to_f32(static_cast<const uint16_t*>(kv.data)[i]);
    case KvType::F16:
      return __half2float(static_cast<const __half*>(kv.data)[i]);
    case KvType::INT8:
      return float(static_cast<const int8_t*>(kv.data)[i]) * kv.scale[kv.per_channel ? c : 0];
    case KvType::FP8:
      return fp8_to_f32(static_cast<const uint8_t*>(kv.data)[i]) * kv.scale[kv.per_channel ? c : 0];
  }
  return 0.0f;
}

// kv_load for a cache of format T known at compile time (F32, BF16, F16: no scale), the same
// value: a loop of these issues its loads back to back, where kv_load's runtime switch can leave
// each load's conversion, and so a stall on it, before the next load.
template <KvType T>
__device__ __forceinline__ float kv_load_as(const void* data, int64_t i) {
  static_assert(T == KvType::F32 || T == KvType::BF16 || T == KvType::F16);
  if constexpr (T == KvType::F32)
    return static_cast<const float*>(data)[i];
  else if constexpr (T == KvType::BF16)
    return bf16_bits_to_f32(static_cast<const uint16_t*>(data)[i]);
  else
    return __half2float(static_cast<const __half*>(data)[i]);
}

// Stores v as cache element dst (row · kv_dim + c, c the channel) in the cache's format: F32 as
// is, BF16/F16 rounded to nearest even, INT8 the CPU's int8_roundtrip code clamp(rint(v / s),
// ±127), FP8 e4m3 of v / s saturating.
__device__ __forceinline__ void kv_store(const KvView& kv, int64_t dst, int64_t c, float v) {
  switch (kv.type) {
    case KvType::F32:
      static_cast<float*>(kv.data)[dst] = v;
      break;
    case KvType::BF16:
      static_cast<uint16_t*>(kv.data)[dst] = f32_to_bf16_bits(v);
      break;
    case KvType::F16:
      static_cast<__half*>(kv.data)[dst] = __float2half_rn(v);
      break;
    case KvType::INT8: {
      const float q = fminf(fmaxf(rintf(v / kv.scale[kv.per_channel ? c : 0]), -127.0f), 127.0f);
      static_cast<int8_t*>(kv.data)[dst] = int8_t(q);
      break;
    }
    case KvType::FP8:
      static_cast<uint8_t*>(kv.data)[dst] = f32_to_fp8(v / kv.scale[kv.per_channel ? c : 0]);
      break;
  }
}

__device__ __forceinline__ float warp_max(float v) {
  for (int w = 16; w >= 1; w /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, w));
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int w = 16; w >= 1; w /= 2) v += __shfl_xor_sync(0xffffffffu, v, w);
  return v;
}
// The contract's fold on a warp: lane k += lane k + w for w = 16 .. 1; lane 0 holds the result.
__device__ __forceinline__ float warp_fold(float v) {
  for (int w = 16; w >= 1; w /= 2) v += __shfl_down_sync(0xffffffffu, v, w);
  return v;
}

// Sum of squares of x[0, n) in double over the first `active` threads of the block (a multiple
// of 32, at most blockDim.x, itself at most 1024): thread j sums elements j, j + active, ... in
// increasing order, the warps fold, then warp sums are added in warp order; every thread gets the
// same value. A block of more threads computes exactly what a block of `active` threads does (its
// other warps add +0.0, which changes no sum of squares). `red`: shared scratch of 32 doubles.
__device__ __forceinline__ double block_sum_squares(const float* x, int64_t n, double* red,
                                                    int active) {
  double ss = 0.0;
  if (int(threadIdx.x) < active)
    for (int64_t i = threadIdx.x; i < n; i += active) ss += double(x[i]) * double(x[i]);
  ss = warp_sum(ss);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // `red` may still be read by a previous call
  if (lane == 0) red[warp] = ss;
  __syncthreads();
  double tot = 0.0;
  for (int i = 0; i < int(blockDim.x / 32); ++i) tot += red[i];
  return tot;
}
__device__ __forceinline__ double block_sum_squares(const float* x, int64_t n, double* red) {
  return block_sum_squares(x, n, red, int(blockDim.x));
}
// The block size of add_rmsnorm (and rmsnorm) for rows of n: its sum of squares' order, which
// the kernels that normalise as add_rmsnorm does (rmsnorm_gate_up_silu) reproduce.
__host__ __device__ constexpr int norm_threads(int64_t n) {
  return n >= 1024 ? 256 : n >= 256 ? 128 : 32;
}
// transformers: variance = mean(x²) in fp32; rsqrt(variance + eps) as 1 / sqrt (CPU's inv_rms).
__device__ __forceinline__ float inv_rms_from(double ss, int64_t n, float eps) {
  const float variance = float(ss / double(n));
  return 1.0f / sqrtf(variance + eps);
}

// 16 bytes global -> shared, asynchronously (sm_80+); commit closes this thread's group, wait<N>
// returns when at most N of its groups are still in flight.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const unsigned s = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

inline int launch_status() {
  return int(cudaGetLastError());
}

// Programmatic dependent launch (Hopper; no-ops on older GPUs and when the kernel was launched
// without the attribute). pdl_trigger lets the next kernel in the stream, if it was launched with
// launch_pdl, start before this one ends: only its prologue (weight loads, which depend on no
// kernel) runs early, because pdl_wait blocks until every earlier kernel in the stream has
// finished and its writes are visible. A kernel launched with launch_pdl must call pdl_wait
// before it reads an activation or writes anything.
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// The first statement of every kernel launched with launch_pdl that loads nothing early: the
// next kernel may be scheduled now (its blocks wait in pdl_wait), and this one waits for the
// previous. Chained, it hides each launch behind the kernel before it.
__device__ __forceinline__ void pdl_start() {
  pdl_trigger();
  pdl_wait();
}

// Launches `kernel` allowed to overlap the previous kernel in `stream` (programmatic stream
// serialization; captured into graphs as a programmatic edge). On the legacy default stream
// (nullptr) it is an ordinary launch.
template <typename... KArgs, typename... Args>
int launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, Stream stream,
               Args... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr, cfg.numAttrs = stream ? 1 : 0;
  return int(cudaLaunchKernelEx(&cfg, kernel, KArgs(args)...));
}

}  // namespace fusecheck::cuda
