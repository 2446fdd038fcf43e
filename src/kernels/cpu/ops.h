// Scalar CPU kernels for the standard (unfused) path and the fp32 reference. They are the oracle
// every faster or fused kernel is tested against, so they are written for clarity first.
//
// Activations always live in fp32 buffers. In the model-dtype path each op ends by rounding its
// output to the activation type (bf16 or f16), exactly where PyTorch eager would store a bf16
// tensor; the values stay bf16-representable in their fp32 slots. In the fp32 reference the
// rounding is the identity. The list of rounding points is in docs/NUMERICS.md.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/types.h"

namespace fusecheck::cpu {

// Rounds n values in place to `t`.
void round_to(ActType t, float* x, size_t n);

// Converts row `r` of `w` to fp32 (cols values) into `dst`.
void weight_row_f32(const Weight& w, int64_t r, float* dst);

// The dot-product contract every kernel (scalar, SIMD on any ISA, threaded) follows, so results
// are bit-identical across ISAs and thread counts and a faster kernel never moves a measurement:
// element i is accumulated into lane i % kDotLanes with a fused multiply-add, in increasing i;
// then lanes fold in halves (lane k += lane k + w for w = 16, 8, 4, 2, 1). 32 lanes are four
// AVX2 vectors, two AVX-512 vectors or eight NEON vectors: enough independent chains to hide FMA
// latency. a, b: [n].
constexpr int kDotLanes = 32;
float dot_lanes(const float* a, const float* b, int64_t n);

// out[t, r] = round(dot_lanes(x[t, :], W[r, :]) + bias[r]) for t < T, r < W.rows.
// x: [T, W.cols], out: [T, W.rows], bias: [W.rows] or absent. The bias is added to the fp32 sum
// and the output is rounded once, like PyTorch's bf16 addmm on the CPU. `scratch` holds one weight
// row: [W.cols].
void linear(float* out, const float* x, int64_t T, const Weight& w, const Weight& bias, ActType t,
            float* scratch);

// 1 / sqrt(mean(x^2) + eps) over x: [n], the sum of squares in double, the rest in fp32 as
// transformers computes `torch.rsqrt(variance + eps)`. Every RMSNorm kernel uses it.
float inv_rms(const float* x, int64_t n, float eps);
// The same from the sum of squares ss (accumulated in double, in increasing i) of n values.
float inv_rms_from_sum(double ss, int64_t n, float eps);

// PyTorch RMSNorm as transformers writes it: y = round(x * rsqrt(mean(x^2) + eps)) in fp32, then
// out = round(gain * y). x, out: [n]; gain: [n] fp32 copy of the (exactly representable) weights.
// The sum of squares accumulates in double.
void rmsnorm(float* out, const float* x, const float* gain, int64_t n, float eps, ActType t);

// out = round(a + b), elementwise over n (residual adds).
void add(float* out, const float* a, const float* b, size_t n, ActType t);

// SwiGLU's gating: gate = round(silu(gate)) then out = round(gate * up). gate, up, out: [n].
void silu_mul(float* out, const float* gate, const float* up, size_t n, ActType t);

// Rotary embedding in transformers' rotate_half layout on one head: x: [head_dim], cos/sin:
// [head_dim/2] (already rounded to `t`, as transformers casts them to the model dtype).
// x' = round(round(x * cos) + round(rotate_half(x) * sin)), three roundings, as eager computes it.
void rope_rotate_half(float* x, int64_t head_dim, const float* cos, const float* sin, ActType t);

// Where an attention kernel reads keys and values: rows [j0, j0 + nb) of one kv head as fp32, nb
// <= kKvTile. A cache in its own format dequantises one tile at a time into the source's scratch
// (what a GPU kernel does into shared memory); an fp32 source returns a pointer into itself.
// Returns the first row; row j0 + b is at result + b * (*stride).
constexpr int64_t kKvTile = 32;
class KvRows {
 public:
  virtual ~KvRows() = default;
  virtual const float* keys(int64_t j0, int64_t nb, int64_t* stride) const = 0;
  virtual const float* values(int64_t j0, int64_t nb, int64_t* stride) const = 0;
};
// fp32 rows in memory, `stride` floats apart.
class StridedRows final : public KvRows {
 public:
  StridedRows(const float* k, const float* v, int64_t stride) : k_(k), v_(v), stride_(stride) {}
  const float* keys(int64_t j0, int64_t, int64_t* s) const override {
    *s = stride_;
    return k_ + j0 * stride_;
  }
  const float* values(int64_t j0, int64_t, int64_t* s) const override {
    *s = stride_;
    return v_ + j0 * stride_;
  }

 private:
  const float *k_, *v_;
  int64_t stride_;
};

// Eager softmax over n scores (already rounded to `t`): p = round(exp(s - max) / sum) with the sum
// in double, in place. Shared by every eager attention kernel.
void softmax_rounded(float* scores, int64_t n, ActType t);

// Causal attention of one query head over `n_ctx` positions, eager-style:
//   s_j = round(round(q . k_j) * scale); p = round(softmax_fp32(s)); out = round(sum_j p_j v_j).
// q: [head_dim]; out: [head_dim]; scores: scratch [n_ctx]. Softmax sums in double; sum_j p_j v_j
// is a separate multiply and add per j in increasing j.
void attention_head(float* out, const float* q, const KvRows& kv, int64_t n_ctx, int64_t head_dim,
                    float scale, ActType t, float* scores);
// The same over fp32 rows kv_stride floats apart.
void attention_head(float* out, const float* q, const float* keys, const float* values,
                    int64_t n_ctx, int64_t kv_stride, int64_t head_dim, float scale, ActType t,
                    float* scores);

}  // namespace fusecheck::cpu
