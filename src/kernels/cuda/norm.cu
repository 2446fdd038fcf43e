// RMSNorm (standard, also q/k-norm per head), the fused residual add + RMSNorm and its norm alone
// (fused_rmsnorm). One block per row; the sum of squares in double like the CPU (the order
// differs, so the fp32 variance can in principle differ in its last bit; the tests count such
// rows).
#include "kernels/cuda/common.cuh"

namespace fusecheck::cuda {
namespace {

int threads_for(int64_t n) {
  return norm_threads(n);
}

// x, out: [rows, n]. y = round(x · inv); out = round(gain · y).
__global__ void rmsnorm_kernel(float* out, const float* x, const float* gain, int64_t n, float eps,
                               Act act) {
  pdl_start();
  __shared__ double red[32];
  const float* xr = x + int64_t(blockIdx.x) * n;
  float* o = out + int64_t(blockIdx.x) * n;
  const float inv = inv_rms_from(block_sum_squares(xr, n, red), n, eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float y = round_act(act, xr[i] * inv);  // hidden_states.to(input_dtype)
    o[i] = round_act(act, gain[i] * y);           // self.weight * hidden_states
  }
}

// s = h + delta; h = round(s); normed = round_n(gain · (s · inv)); sum_out = s. All [rows, n].
__global__ void add_rmsnorm_kernel(float* h, const float* delta, float* normed, float* sum_out,
                                   const float* gain, int64_t n, float eps, Act act,
                                   Act act_normed) {
  pdl_start();
  __shared__ double red[32];
  const int64_t off = int64_t(blockIdx.x) * n;
  float* s = (sum_out ? sum_out : normed) + off;  // the fp32 sum lives in one of the outputs
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float v = delta ? h[off + i] + delta[off + i] : h[off + i];
    s[i] = v;
    h[off + i] = round_act(act, v);
  }
  __syncthreads();
  const float inv = inv_rms_from(block_sum_squares(s, n, red), n, eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    normed[off + i] = round_act(act_normed, gain[i] * (s[i] * inv));
}

// add_rmsnorm_kernel's norm alone (the same statements): normed = round(gain · (s · inv)).
__global__ void fused_rmsnorm_kernel(float* normed, const float* sum, const float* gain, int64_t n,
                                     float eps, Act act) {
  pdl_start();
  __shared__ double red[32];
  const int64_t off = int64_t(blockIdx.x) * n;
  const float* s = sum + off;
  const float inv = inv_rms_from(block_sum_squares(s, n, red), n, eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    normed[off + i] = round_act(act, gain[i] * (s[i] * inv));
}

}  // namespace

int rmsnorm(float* out, const float* x, const float* gain, int64_t rows, int64_t n, float eps,
            Act act, Stream stream) {
  if (rows <= 0) return 0;
  launch_pdl(rmsnorm_kernel, unsigned(rows), threads_for(n), 0, stream, out, x, gain, n, eps, act);
  return launch_status();
}

int add_rmsnorm(float* h, const float* delta, float* normed, float* sum_out, const float* gain,
                int64_t rows, int64_t n, float eps, Act act, Act act_normed, Stream stream) {
  if (rows <= 0) return 0;
  launch_pdl(add_rmsnorm_kernel, unsigned(rows), threads_for(n), 0, stream, h, delta, normed,
             sum_out, gain, n, eps, act, act_normed);
  return launch_status();
}

int fused_rmsnorm(float* normed, const float* s, const float* gain, int64_t rows, int64_t n,
                  float eps, Act act, Stream stream) {
  if (rows <= 0) return 0;
  launch_pdl(fused_rmsnorm_kernel, unsigned(rows), threads_for(n), 0, stream, normed, s, gain, n,
             eps, act);
  return launch_status();
}

}  // namespace fusecheck::cuda
