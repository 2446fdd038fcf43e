#include "kernels/cpu/fused.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/batched.h"
#include "kernels/cpu/gemm_bf16dot.h"
#include "kernels/cpu/simd.h"
#include "util/half.h"

namespace fusecheck::cpu {

namespace {

// One projection of a fused group, by the chosen dot product.
void project(float* out, const float* x, int64_t T, const Weight& w, const Weight& bias, ActType t,
             ThreadPool* pool, bool bf16_pairs) {
  if (bf16_pairs && w.dtype == DType::BF16)
    linear_bf16dot(out, x, T, w, bias, t, pool);
  else
    linear_simd(out, x, T, w, bias, t, pool);
}

}  // namespace

void fused_add_residual(float* h, const float* delta, float* sum, int64_t n, ActType t) {
  for (int64_t i = 0; i < n; ++i) {
    sum[i] = h[i] + delta[i];
    h[i] = round_one(t, sum[i]);
  }
}

void fused_rmsnorm(float* normed, const float* s, const float* gain, int64_t n, float eps,
                   ActType t) {
  const float inv = inv_rms(s, n, eps);
  for (int64_t i = 0; i < n; ++i) normed[i] = round_one(t, gain[i] * (s[i] * inv));
}

void fused_add_rmsnorm(float* h, const float* delta, float* normed, float* sum_out,
                       const float* gain, int64_t n, float eps, ActType t) {
  float* s = sum_out ? sum_out : normed;  // the fp32 sum lives in one of the outputs
  if (delta) {
    fused_add_residual(h, delta, s, n, t);
  } else {
    for (int64_t i = 0; i < n; ++i) s[i] = h[i], h[i] = round_one(t, s[i]);
  }
  fused_rmsnorm(normed, s, gain, n, eps, t);
}

void fused_rmsnorm_qkv(float* q, float* k, float* v, const float* x, int64_t T, const float* gain,
                       float eps, const Weight& wq, const Weight& wk, const Weight& wv,
                       const Weight& bq, const Weight& bk, const Weight& bv, ActType t, float* xn,
                       ThreadPool* pool, bool bf16_pairs) {
  const int64_t dim = wq.cols;
  std::vector<float> inv(static_cast<size_t>(T));  // [T] every token's inv_rms, rows interleaved
  inv_rms_rows(x, T, dim, eps, inv.data());
  for (int64_t tok = 0; tok < T; ++tok) {
    const float* xt = x + tok * dim;
    const float s = inv[static_cast<size_t>(tok)];
    for (int64_t i = 0; i < dim; ++i) xn[tok * dim + i] = gain[i] * (xt[i] * s);  // stays fp32
  }
  project(q, xn, T, wq, bq, t, pool, bf16_pairs);
  project(k, xn, T, wk, bk, t, pool, bf16_pairs);
  project(v, xn, T, wv, bv, t, pool, bf16_pairs);
}

void fused_qk_norm_rope(float* x, int64_t n_heads, int64_t head_dim, const float* gain, float eps,
                        const float* cos, const float* sin, ActType t) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    const float inv = gain ? inv_rms(xh, head_dim, eps) : 1.0f;
    for (int64_t i = 0; i < half; ++i) {
      const float x1 = gain ? gain[i] * (xh[i] * inv) : xh[i];
      const float x2 = gain ? gain[i + half] * (xh[i + half] * inv) : xh[i + half];
      xh[i] = round_one(t, x1 * cos[i] - x2 * sin[i]);
      xh[i + half] = round_one(t, x2 * cos[i] + x1 * sin[i]);
    }
  }
}

namespace {

// q.k with an fp16 accumulator: each product is formed in fp32 (the inputs are bf16 values) and
// the running sum is rounded to fp16 after every addition.
float dot_fp16_accumulate(const float* a, const float* b, int64_t n) {
  float acc = 0.0f;
  for (int64_t i = 0; i < n; ++i) acc = f16_to_f32(f32_to_f16(acc + a[i] * b[i]));
  return acc;
}

}  // namespace

void fused_attention(float* out, const float* q, const KvRows& kv, int64_t n_ctx, int64_t head_dim,
                     float scale, ActType t, bool fp16_accumulation, float* acc) {
  // Online softmax over blocks of keys (flash-attention style): one pass over K and V; the running
  // maximum, normaliser and accumulator are rescaled once per block, not once per key.
  constexpr int64_t kBlock = kKvTile;
  float s[kBlock];
  float m = -INFINITY, l = 0.0f;
  int64_t ks = 0, vs = 0;
  for (int64_t d = 0; d < head_dim; ++d) acc[d] = 0.0f;
  for (int64_t j0 = 0; j0 < n_ctx; j0 += kBlock) {
    const int64_t nb = std::min(kBlock, n_ctx - j0);
    const float* keys = kv.keys(j0, nb, &ks);
    float m_block = -INFINITY;
    for (int64_t b = 0; b < nb; ++b) {
      const float* kj = keys + b * ks;
      const float dot = fp16_accumulation ? dot_fp16_accumulate(q, kj, head_dim)
                                          : dot_lanes_simd(q, kj, head_dim);
      s[b] = dot * scale;  // fp32, never rounded
      m_block = std::max(m_block, s[b]);
    }
    const float m_new = std::max(m, m_block);
    const float correction = std::exp(m - m_new);  // exp(-inf) = 0 on the first block
    l *= correction;
    for (int64_t d = 0; d < head_dim; ++d) acc[d] *= correction;
    const float* values = kv.values(j0, nb, &vs);
    for (int64_t b = 0; b < nb; ++b) {
      const float p = std::exp(s[b] - m_new);
      l += p;
      const float* vj = values + b * vs;
      for (int64_t d = 0; d < head_dim; ++d) acc[d] += p * vj[d];
    }
    m = m_new;
  }
  const float inv_l = 1.0f / l;
  for (int64_t d = 0; d < head_dim; ++d) out[d] = round_one(t, acc[d] * inv_l);
}

void fused_attention(float* out, const float* q, const float* keys, const float* values,
                     int64_t n_ctx, int64_t kv_stride, int64_t head_dim, float scale, ActType t,
                     bool fp16_accumulation, float* acc) {
  fused_attention(out, q, StridedRows(keys, values, kv_stride), n_ctx, head_dim, scale, t,
                  fp16_accumulation, acc);
}

void fused_gate_up_silu(float* out, const float* x, int64_t T, const Weight& wg, const Weight& wu,
                        ActType t, float* gate, float* up, ThreadPool* pool, bool bf16_pairs) {
  // fp32 outputs: no rounding
  project(gate, x, T, wg, Weight{}, ActType::F32, pool, bf16_pairs);
  project(up, x, T, wu, Weight{}, ActType::F32, pool, bf16_pairs);
  const int64_t n = T * wg.rows;
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = round_one(t, g / (1.0f + std::exp(-g)) * up[i]);
  }
}

}  // namespace fusecheck::cpu
