// Batched forms of the standard path's row ops over [rows, n] buffers: one call per op per layer
// for all T tokens (and heads). Each row gets exactly the per-row oracle's result (ops.h): the
// same operations in the same order per element; only independent rows are interleaved (the
// double sums of squares of several rows advance together, which hides the add latency that
// bounds one row's sequential sum) and the activation type is fixed per call instead of per
// element. tests/test_cpu_batched.cpp holds them bit-identical to the oracle.
#pragma once

#include <cstdint>

#include "kernels/cpu/ops.h"

namespace fusecheck::cpu {

// inv[r] = inv_rms(x + r * n, n, eps) for r < rows. x: [rows, n]; inv: [rows].
void inv_rms_rows(const float* x, int64_t rows, int64_t n, float eps, float* inv);

// out[r] = rmsnorm(x[r]) for r < rows (cpu::rmsnorm per row). out may equal x (in place).
// x, out: [rows, n]; gain: [n].
void rmsnorm_rows(float* out, const float* x, const float* gain, int64_t rows, int64_t n, float eps,
                  ActType t);

// The standard path's q/k norm and RoPE on T tokens of n_heads heads: per token, cos/sin rounded
// to t (as transformers casts them), then per head rmsnorm (gain != nullptr) and
// rope_rotate_half. x: [T, n_heads, hd] in place; cos, sin: [T, hd / 2] fp32 rows of the token
// positions; cs: scratch [hd].
void qk_norm_rope_rows(float* x, int64_t T, int64_t n_heads, int64_t hd, const float* gain,
                       float eps, const float* cos, const float* sin, ActType t, float* cs);

// cpu::add and cpu::silu_mul with the activation type fixed per call. [n] each.
void add_rows(float* out, const float* a, const float* b, int64_t n, ActType t);
void silu_mul_rows(float* out, const float* gate, const float* up, int64_t n, ActType t);

}  // namespace fusecheck::cpu
