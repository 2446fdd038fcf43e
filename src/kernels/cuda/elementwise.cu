// Elementwise ops of the standard path (residual add, SiLU·mul), the fused path's residual add
// (add_residual: add_rmsnorm's add alone), the embedding lookup and greedy argmax. Each output is
// rounded where PyTorch eager rounds it (docs/NUMERICS.md).
#include "kernels/cuda/common.cuh"

namespace fusecheck::cuda {
namespace {

constexpr int kThreads = 256;
unsigned blocks_for(int64_t n) {
  return unsigned((n + kThreads - 1) / kThreads);
}

// a, b, out: [n].
__global__ void add_kernel(float* out, const float* a, const float* b, int64_t n, Act act) {
  pdl_start();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = round_act(act, a[i] + b[i]);
}

// add_rmsnorm's add: s = h + delta; h = round(s); sum = s. h, delta, sum: [n].
__global__ void add_residual_kernel(float* h, const float* delta, float* sum, int64_t n, Act act) {
  pdl_start();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float s = h[i] + delta[i];
  sum[i] = s;
  h[i] = round_act(act, s);
}

// gate, up, out: [n]. silu rounds (act_fn(gate_proj(x))), then the product rounds.
__global__ void silu_mul_kernel(float* out, float* gate, const float* up, int64_t n, Act act) {
  pdl_start();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = gate[i];
  // The CPU divides by 1 + std::exp(-g) (glibc expf, < 0.502 ulp); exp in double then narrowed
  // gives the correctly rounded value, which is expf's in all but rare near-halfway cases.
  const float s = round_act(act, g / (1.0f + float(exp(-double(g)))));
  out[i] = round_act(act, s * up[i]);
}

// ids: [T]; table: [vocab, dim]; out: [T, dim]. grid (ceil(dim / 256), T).
__global__ void embed_kernel(float* out, const int32_t* ids, const void* table, WType wt,
                             int64_t dim) {
  pdl_start();
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= dim) return;
  const int64_t t = blockIdx.y;
  out[t * dim + c] = load_w_rt(wt, table, int64_t(ids[t]) * dim + c);
}

// One block of 1024 threads; ties go to the lowest index (torch.argmax's first maximum).
// advance (optional): the decode position, moved on by one once the token is chosen.
// Each thread scans i = tid, tid + 1024, ... in increasing order, kB loads in flight before
// their compares (one load at a time took 60 µs on a 151936 row: latency, not bandwidth).
// The result does not depend on how elements map to threads: only values > -inf can replace
// the start (-inf, 0), a thread keeps its first maximum, and the merge takes the lower index.
__global__ void argmax_kernel(int32_t* out, const float* x, int64_t n, int32_t* advance) {
  pdl_start();
  constexpr int kB = 16;
  __shared__ float sv[32];
  __shared__ int32_t si[32];
  float best = -INFINITY;
  int32_t bi = 0;
  for (int64_t base = threadIdx.x; base < n; base += kB * int64_t(blockDim.x)) {
    float v[kB];
#pragma unroll
    for (int u = 0; u < kB; ++u) {
      const int64_t i = base + u * int64_t(blockDim.x);
      v[u] = i < n ? x[i] : -INFINITY;
    }
#pragma unroll
    for (int u = 0; u < kB; ++u)
      if (v[u] > best) best = v[u], bi = int32_t(base + u * int64_t(blockDim.x));
  }
  for (int w = 16; w >= 1; w /= 2) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, w);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, w);
    if (ov > best || (ov == best && oi < bi)) best = ov, bi = oi;
  }
  if (threadIdx.x % 32 == 0) sv[threadIdx.x / 32] = best, si[threadIdx.x / 32] = bi;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int k = 1; k < int(blockDim.x / 32); ++k)
      if (sv[k] > best || (sv[k] == best && si[k] < bi)) best = sv[k], bi = si[k];
    *out = bi;
    if (advance) *advance += 1;
  }
}

}  // namespace

int add(float* out, const float* a, const float* b, int64_t n, Act act, Stream stream) {
  if (n <= 0) return 0;
  launch_pdl(add_kernel, blocks_for(n), kThreads, 0, stream, out, a, b, n, act);
  return launch_status();
}

int add_residual(float* h, const float* delta, float* sum, int64_t n, Act act, Stream stream) {
  if (n <= 0) return 0;
  launch_pdl(add_residual_kernel, blocks_for(n), kThreads, 0, stream, h, delta, sum, n, act);
  return launch_status();
}

int silu_mul(float* out, float* gate, const float* up, int64_t n, Act act, Stream stream) {
  if (n <= 0) return 0;
  launch_pdl(silu_mul_kernel, blocks_for(n), kThreads, 0, stream, out, gate, up, n, act);
  return launch_status();
}

int embed(float* out, const int32_t* ids, int64_t T, const DevWeight& table, Stream stream) {
  if (T <= 0) return 0;
  launch_pdl(embed_kernel, dim3(blocks_for(table.cols), unsigned(T)), kThreads, 0, stream, out, ids,
             table.data, table.type, table.cols);
  return launch_status();
}

int argmax(int32_t* out, const float* x, int64_t n, Stream stream, int32_t* advance) {
  launch_pdl(argmax_kernel, 1, 1024, 0, stream, out, x, n, advance);
  return launch_status();
}

}  // namespace fusecheck::cuda
