// Rotary embedding (transformers' rotate_half layout): the standard kernel with cos/sin rounded to
// the activation type and three roundings per output, and the fused per-head RMSNorm + RoPE that
// keeps everything in fp32 and rounds once. One warp per (token, head); the position of token t
// is *pos + t, read on the device.
#include "kernels/cuda/common.cuh"

namespace fusecheck::cuda {
namespace {

// x: [T, heads, head_dim]; cos_tab, sin_tab: [max_pos, head_dim / 2]. grid (heads, T), 32 threads.
__global__ void rope_kernel(float* x, int64_t heads, int64_t head_dim, const float* cos_tab,
                            const float* sin_tab, const int32_t* pos, Act act) {
  pdl_start();
  const int64_t t = blockIdx.y, half = head_dim / 2;
  float* xh = x + (t * heads + blockIdx.x) * head_dim;
  const int64_t p = int64_t(*pos) + t;
  for (int64_t i = threadIdx.x; i < half; i += 32) {
    const float c = round_act(act, cos_tab[p * half + i]);  // cos.to(x.dtype)
    const float s = round_act(act, sin_tab[p * half + i]);
    const float x1 = xh[i], x2 = xh[i + half];
    const float a1 = round_act(act, x1 * c), b1 = round_act(act, -x2 * s);
    const float a2 = round_act(act, x2 * c), b2 = round_act(act, x1 * s);
    xh[i] = round_act(act, a1 + b1);
    xh[i + half] = round_act(act, a2 + b2);
  }
}

// As rope_kernel, with the head's RMSNorm and gain first (gain == nullptr: RoPE only), fp32 cos
// and sin, and one rounding.
__global__ void qk_norm_rope_kernel(float* x, int64_t heads, int64_t head_dim, const float* gain,
                                    float eps, const float* cos_tab, const float* sin_tab,
                                    const int32_t* pos, Act act) {
  pdl_start();
  const int64_t t = blockIdx.y, half = head_dim / 2;
  float* xh = x + (t * heads + blockIdx.x) * head_dim;
  const int64_t p = int64_t(*pos) + t;
  float inv = 1.0f;
  if (gain) {
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < head_dim; i += 32) ss += double(xh[i]) * double(xh[i]);
    inv = inv_rms_from(warp_sum(ss), head_dim, eps);  // the shuffles order reads before writes
  }
  for (int64_t i = threadIdx.x; i < half; i += 32) {
    const float c = cos_tab[p * half + i], s = sin_tab[p * half + i];
    const float x1 = gain ? gain[i] * (xh[i] * inv) : xh[i];
    const float x2 = gain ? gain[i + half] * (xh[i + half] * inv) : xh[i + half];
    xh[i] = round_act(act, x1 * c - x2 * s);
    xh[i + half] = round_act(act, x2 * c + x1 * s);
  }
}

}  // namespace

int rope(float* x, int64_t T, int64_t heads, int64_t head_dim, const float* cos_tab,
         const float* sin_tab, const int32_t* pos, Act act, Stream stream) {
  if (T <= 0) return 0;
  launch_pdl(rope_kernel, dim3(unsigned(heads), unsigned(T)), 32, 0, stream, x, heads, head_dim,
             cos_tab, sin_tab, pos, act);
  return launch_status();
}

int qk_norm_rope(float* x, int64_t T, int64_t heads, int64_t head_dim, const float* gain, float eps,
                 const float* cos_tab, const float* sin_tab, const int32_t* pos, Act act,
                 Stream stream) {
  if (T <= 0) return 0;
  launch_pdl(qk_norm_rope_kernel, dim3(unsigned(heads), unsigned(T)), 32, 0, stream, x, heads,
             head_dim, gain, eps, cos_tab, sin_tab, pos, act);
  return launch_status();
}

}  // namespace fusecheck::cuda
