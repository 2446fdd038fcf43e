#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "util/half.h"

namespace fusecheck::cpu {

void round_to(ActType t, float* x, size_t n) {
  if (t == ActType::F32) return;
  for (size_t i = 0; i < n; ++i) x[i] = round_one(t, x[i]);
}

void weight_row_f32(const Weight& w, int64_t r, float* dst) {
  assert(w.data && r < w.rows);
  const size_t n = static_cast<size_t>(w.cols);
  const size_t off = static_cast<size_t>(r) * n;
  convert_to_f32(w.dtype, static_cast<const std::byte*>(w.data) + off * dtype_size(w.dtype), n,
                 dst);
}

float dot_lanes(const float* a, const float* b, int64_t n) {
  float acc[kDotLanes] = {};
  int64_t i = 0;
  for (; i + kDotLanes <= n; i += kDotLanes)
    for (int k = 0; k < kDotLanes; ++k) acc[k] = std::fma(a[i + k], b[i + k], acc[k]);
  for (int k = 0; i < n; ++i, ++k) acc[k] = std::fma(a[i], b[i], acc[k]);
  // Fold halves: lane k += lane k + width, for width 16, 8, 4, 2, 1.
  for (int width = kDotLanes / 2; width >= 1; width /= 2)
    for (int k = 0; k < width; ++k) acc[k] += acc[k + width];
  return acc[0];
}

void linear(float* out, const float* x, int64_t T, const Weight& w, const Weight& bias, ActType t,
            float* scratch) {
  const int64_t rows = w.rows, cols = w.cols;
  float bias_r = 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    weight_row_f32(w, r, scratch);  // one row, reused across all T tokens
    if (bias) bias_r = element_f32(bias, r);
    for (int64_t tok = 0; tok < T; ++tok) {
      float s = dot_lanes(x + tok * cols, scratch, cols);
      if (bias) s += bias_r;
      out[tok * rows + r] = round_one(t, s);
    }
  }
}

float inv_rms_from_sum(double ss, int64_t n, float eps) {
  // transformers: variance (fp32) = mean(x^2); x * torch.rsqrt(variance + eps).
  const float variance = static_cast<float>(ss / static_cast<double>(n));
  return 1.0f / std::sqrt(variance + eps);
}

float inv_rms(const float* x, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  return inv_rms_from_sum(ss, n, eps);
}

void rmsnorm(float* out, const float* x, const float* gain, int64_t n, float eps, ActType t) {
  const float inv = inv_rms(x, n, eps);
  for (int64_t i = 0; i < n; ++i) {
    const float y = round_one(t, x[i] * inv);  // hidden_states.to(input_dtype)
    out[i] = round_one(t, gain[i] * y);        // self.weight * hidden_states
  }
}

void add(float* out, const float* a, const float* b, size_t n, ActType t) {
  for (size_t i = 0; i < n; ++i) out[i] = round_one(t, a[i] + b[i]);
}

void silu_mul(float* out, const float* gate, const float* up, size_t n, ActType t) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float s = round_one(t, g / (1.0f + std::exp(-g)));  // act_fn(gate_proj(x))
    out[i] = round_one(t, s * up[i]);                         // * up_proj(x)
  }
}

void rope_rotate_half(float* x, int64_t head_dim, const float* cos, const float* sin, ActType t) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float x1 = x[i], x2 = x[i + half];
    // q * cos + rotate_half(q) * sin, where rotate_half(q) = cat(-q2, q1); cos/sin repeat per half.
    const float a1 = round_one(t, x1 * cos[i]), b1 = round_one(t, -x2 * sin[i]);
    const float a2 = round_one(t, x2 * cos[i]), b2 = round_one(t, x1 * sin[i]);
    x[i] = round_one(t, a1 + b1);
    x[i + half] = round_one(t, a2 + b2);
  }
}

void softmax_rounded(float* scores, int64_t n, ActType t) {
  float max_s = -INFINITY;
  for (int64_t j = 0; j < n; ++j) max_s = std::max(max_s, scores[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - max_s);
    sum += scores[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < n; ++j) scores[j] = round_one(t, scores[j] * inv);  // .to(dtype)
}

void attention_head(float* out, const float* q, const KvRows& kv, int64_t n_ctx, int64_t head_dim,
                    float scale, ActType t, float* scores) {
  int64_t stride = 0;
  for (int64_t j0 = 0; j0 < n_ctx; j0 += kKvTile) {
    const int64_t nb = std::min(kKvTile, n_ctx - j0);
    const float* k = kv.keys(j0, nb, &stride);
    // matmul(q, k^T) rounds, then "* self.scaling" rounds again.
    for (int64_t b = 0; b < nb; ++b)
      scores[j0 + b] = round_one(t, round_one(t, dot_lanes(q, k + b * stride, head_dim)) * scale);
  }
  softmax_rounded(scores, n_ctx, t);
  for (int64_t d = 0; d < head_dim; ++d) out[d] = 0.0f;  // the accumulator, rounded at the end
  for (int64_t j0 = 0; j0 < n_ctx; j0 += kKvTile) {
    const int64_t nb = std::min(kKvTile, n_ctx - j0);
    const float* v = kv.values(j0, nb, &stride);
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t d = 0; d < head_dim; ++d) out[d] += scores[j0 + b] * v[b * stride + d];
  }
  for (int64_t d = 0; d < head_dim; ++d) out[d] = round_one(t, out[d]);
}

void attention_head(float* out, const float* q, const float* keys, const float* values,
                    int64_t n_ctx, int64_t kv_stride, int64_t head_dim, float scale, ActType t,
                    float* scores) {
  attention_head(out, q, StridedRows(keys, values, kv_stride), n_ctx, head_dim, scale, t, scores);
}

}  // namespace fusecheck::cpu
