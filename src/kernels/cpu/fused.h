// Fused CPU kernels, each named for what it fuses. Their numerics differ from the standard path's
// the way real fused kernels' do: intermediates stay fp32 inside the kernel and only its outputs
// are rounded to the activation type. docs/NUMERICS.md lists every rounding point; the unfused
// kernels in ops.h stay the oracle, and tests/test_fused_kernels.cpp checks each fused kernel
// against a scalar reference of its own math.
#pragma once

#include <cstdint>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"

namespace fusecheck::cpu {

// bf16_pairs (rmsnorm_qkv, gate_up_silu): the projections of bf16 weights use the bf16-pair dot
// (gemm_bf16dot.h, the opt-in --dot bf16-pairs), which rounds their input to bf16 first; false:
// the 32-lane contract (linear_simd).

// Residual add and RMSNorm in one pass (vLLM's fused_add_rms_norm):
//   s = h + delta (fp32); h = round(s) (the stored residual stream);
//   normed = round_to(t, gain * s * rsqrt(mean(s^2) + eps)): one rounding, from the
//   unrounded sum. delta == nullptr: no add (s = h). sum_out (optional) receives s, for a
//   following fused_rmsnorm_qkv. h, delta, normed, sum_out: [n]; gain: [n].
void fused_add_rmsnorm(float* h, const float* delta, float* normed, float* sum_out,
                       const float* gain, int64_t n, float eps, ActType t);
// fused_add_rmsnorm's two halves, which it is made of (linear_add_residual and
// rmsnorm_gate_up_silu split it between two projections; docs/NUMERICS.md):
// the add: s = h + delta (fp32); h = round(s); sum = s. h, delta, sum: [n].
void fused_add_residual(float* h, const float* delta, float* sum, int64_t n, ActType t);
// the norm: normed = round(gain * (s * inv_rms(s))), one rounding. s, normed: [n] (may alias);
// gain: [n].
void fused_rmsnorm(float* normed, const float* s, const float* gain, int64_t n, float eps,
                   ActType t);

// RMSNorm fused into the QKV projection: the normalised activation times its gain stays fp32 and
// feeds the three projections; only q, k, v are rounded (once each, bias added in fp32).
// x: [T, dim]; q: [T, wq.rows]; k, v: [T, wk.rows]; gain: [dim]; xn: scratch [T, dim].
// The projections run on the SIMD kernels (bit-identical to cpu::linear) over `pool`.
void fused_rmsnorm_qkv(float* q, float* k, float* v, const float* x, int64_t T, const float* gain,
                       float eps, const Weight& wq, const Weight& wk, const Weight& wv,
                       const Weight& bq, const Weight& bk, const Weight& bv, ActType t, float* xn,
                       ThreadPool* pool, bool bf16_pairs = false);

// Per-head q/k RMSNorm (when gain != nullptr), its gain and RoPE in one pass, all fp32 with fp32
// cos/sin; one rounding at the end. x: [n_heads, head_dim] in place; gain: [head_dim];
// cos, sin: [head_dim/2] fp32 (not rounded).
void fused_qk_norm_rope(float* x, int64_t n_heads, int64_t head_dim, const float* gain, float eps,
                        const float* cos, const float* sin, ActType t);

// Attention of one query head in one pass with an online softmax (flash-attention style): scores
// and probabilities never leave fp32 and the output is rounded once. Keys and values are read one
// tile of kKvTile rows at a time (the online softmax's block). With fp16_accumulation the q.k dot
// product accumulates in fp16 (each partial sum rounded to fp16), as kernels with an fp16
// accumulator do. q: [head_dim]; out: [head_dim]; acc: scratch [head_dim].
void fused_attention(float* out, const float* q, const KvRows& kv, int64_t n_ctx, int64_t head_dim,
                     float scale, ActType t, bool fp16_accumulation, float* acc);
// The same over fp32 rows kv_stride floats apart.
void fused_attention(float* out, const float* q, const float* keys, const float* values,
                     int64_t n_ctx, int64_t kv_stride, int64_t head_dim, float scale, ActType t,
                     bool fp16_accumulation, float* acc);

// The gate and up projections and silu(gate) * up: gate and up stay fp32 (the projections round to
// F32, i.e. not at all), one rounding at the end. x: [T, dim]; out: [T, wg.rows];
// gate, up: scratch [T, wg.rows] each.
void fused_gate_up_silu(float* out, const float* x, int64_t T, const Weight& wg, const Weight& wu,
                        ActType t, float* gate, float* up, ThreadPool* pool,
                        bool bf16_pairs = false);

}  // namespace fusecheck::cpu
