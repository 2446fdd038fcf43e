// Device functions shared by the per-op decode kernels (rope.cu, attention.cu) and the persistent
// decode kernel (decoder.cu), so that both compute each value with the same statements: the fused
// per-head norm + RoPE, the attention's key dot, its online-softmax step and its split merge.
// Compiled with --fmad=false like every CUDA source here (common.cuh).
#pragma once

#include "kernels/cuda/common.cuh"

namespace fusecheck::cuda {

constexpr int kMaxHeadDim = 256;  // 8 values per lane
constexpr int kSplitWarps = 4;    // warps per (head, split) of the online attention
constexpr int kReduceWarps = 8;   // the split reduce's warps (its summation order)

// One head's RMSNorm and gain (gain == nullptr: RoPE only), then RoPE with fp32 cos and sin,
// rounded once; run by the 32 lanes of one warp. xh: [head_dim] in place; gain: [head_dim];
// cos_p, sin_p: [head_dim / 2] the position's row of the tables.
__device__ __forceinline__ void norm_rope_head(float* xh, int64_t head_dim, const float* gain,
                                               float eps, const float* cos_p, const float* sin_p,
                                               Act act, int lane) {
  const int64_t half = head_dim / 2;
  float inv = 1.0f;
  if (gain) {
    double ss = 0.0;
    for (int64_t i = lane; i < head_dim; i += 32) ss += double(xh[i]) * double(xh[i]);
    inv = inv_rms_from(warp_sum(ss), head_dim, eps);  // the shuffles order reads before writes
  }
  for (int64_t i = lane; i < half; i += 32) {
    const float c = cos_p[i], s = sin_p[i];
    const float x1 = gain ? gain[i] * (xh[i] * inv) : xh[i];
    const float x2 = gain ? gain[i + half] * (xh[i + half] * inv) : xh[i + half];
    xh[i] = round_act(act, x1 * c - x2 * s);
    xh[i + half] = round_act(act, x2 * c + x1 * s);
  }
}

// The contract dot of q (lane-resident: qr[c] = q[lane + 32c]) with key row j; valid in lane 0.
__device__ __forceinline__ float key_dot(const float* qr, const KvView& k, int64_t row_off,
                                         int64_t ch_off, int64_t head_dim, int lane) {
  float acc = 0.0f;
#pragma unroll
  for (int c = 0; c < kMaxHeadDim / 32; ++c) {
    const int64_t d = lane + 32 * c;
    if (d < head_dim) acc = fmaf(qr[c], kv_load(k, row_off + d, ch_off + d), acc);
  }
  return warp_fold(acc);
}

// The online softmax's weights for one key of score sj (fp32, never rounded): m and l absorb it;
// corr rescales the accumulator and p weighs the key's values (online_value).
__device__ __forceinline__ void online_weights(float sj, float& m, float& l, float& corr,
                                               float& p) {
  const float m_new = fmaxf(m, sj);
  corr = expf(m - m_new), p = expf(sj - m_new);  // exp(-inf) = 0 at the first key
  l = l * corr + p;
  m = m_new;
}
__device__ __forceinline__ float online_value(float acc, float corr, float p, float v) {
  return acc * corr + p * v;
}

// The online softmax's step for one key of score sj: m, l and this lane's acc[c] (values
// d = lane + 32c) absorb it, v_off the key's first value in the cache.
__device__ __forceinline__ void online_step(float sj, const KvView& v, int64_t v_off,
                                            int64_t ch_off, int64_t head_dim, int lane, float& m,
                                            float& l, float* acc) {
  float corr, p;
  online_weights(sj, m, l, corr, p);
#pragma unroll
  for (int c = 0; c < kMaxHeadDim / 32; ++c) {
    const int64_t d = lane + 32 * c;
    if (d < head_dim) acc[c] = online_value(acc[c], corr, p, kv_load(v, v_off + d, ch_off + d));
  }
}

// A split's merge of its kSplitWarps warps' (m, l, acc) in part[w] = (m, l, acc[head_dim]):
// element d of the split's work row, d == 0 the common max M, d == 1 the normaliser, else the
// accumulator, each warp scaled by exp(m_w - M) and added in warp order.
__device__ __forceinline__ float split_merge(const float (*part)[kMaxHeadDim + 2], int64_t d) {
  float M = -INFINITY;
  for (int w = 0; w < kSplitWarps; ++w) M = fmaxf(M, part[w][0]);
  if (d == 0) return M;
  float sum = 0.0f;
  for (int w = 0; w < kSplitWarps; ++w)
    if (part[w][0] != -INFINITY) sum += part[w][d] * expf(part[w][0] - M);
  return sum;
}

// acc[c] += v[c] · e for this lane's values d = lane + 32c < head_dim.
__device__ __forceinline__ void add_weighted(float* acc, const float* v, float e, int64_t head_dim,
                                             int lane) {
#pragma unroll
  for (int c = 0; c < kMaxHeadDim / 32; ++c)
    if (lane + 32 * c < head_dim) acc[c] += v[c] * e;
}

}  // namespace fusecheck::cuda
