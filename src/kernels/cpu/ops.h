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

#include "io/safetensors.h"
#include "util/half.h"

namespace fusecheck::cpu {

// The type an op's output is rounded to: the model dtype (standard path) or fp32 (reference).
enum class ActType : uint8_t { F32, BF16, F16 };

// Rounds one value to `t` (round to nearest even; identity for F32). Inline: every op calls it
// per element.
inline float round_one(ActType t, float x) {
  switch (t) {
    case ActType::F32:
      return x;
    case ActType::BF16:
      return bf16_to_f32(f32_to_bf16(x));
    case ActType::F16:
      return f16_to_f32(f32_to_f16(x));
  }
  return x;
}
// Rounds n values in place to `t`.
void round_to(ActType t, float* x, size_t n);

// A weight matrix used in place from the memory map. data == nullptr: absent (optional tensors).
struct Weight {
  DType dtype = DType::F32;  // F32, F16 or BF16
  const void* data = nullptr;
  int64_t rows = 0;  // output features (1 for vectors)
  int64_t cols = 0;  // input features (the vector length for vectors)
  explicit operator bool() const { return data != nullptr; }
};

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

// PyTorch RMSNorm as transformers writes it: y = round(x * rsqrt(mean(x^2) + eps)) in fp32, then
// out = round(gain * y). x, out: [n]; gain: [n] fp32 copy of the (exactly representable) weights.
// The sum of squares accumulates in double.
void rmsnorm(float* out, const float* x, const float* gain, int64_t n, float eps, ActType t);

// out = round(a + b), elementwise over n (residual adds).
void add(float* out, const float* a, const float* b, size_t n, ActType t);

// SwiGLU's gating: gate = round(silu(gate)) then out = round(gate * up). gate, up, out: [n].
void silu_mul(float* out, float* gate, const float* up, size_t n, ActType t);

// Rotary embedding in transformers' rotate_half layout on one head: x: [head_dim], cos/sin:
// [head_dim/2] (already rounded to `t`, as transformers casts them to the model dtype).
// x' = round(round(x * cos) + round(rotate_half(x) * sin)), three roundings, as eager computes it.
void rope_rotate_half(float* x, int64_t head_dim, const float* cos, const float* sin, ActType t);

// Causal attention of one query head over `n_ctx` cached positions, eager-style:
//   s_j = round(round(q . k_j) * scale); p = round(softmax_fp32(s)); out = round(sum_j p_j v_j).
// q: [head_dim]; keys/values: n_ctx rows of head_dim at `kv_stride` floats apart; out: [head_dim];
// scores: scratch [n_ctx]. Softmax sums in double.
void attention_head(float* out, const float* q, const float* keys, const float* values,
                    int64_t n_ctx, int64_t kv_stride, int64_t head_dim, float scale, ActType t,
                    float* scores);

}  // namespace fusecheck::cpu
