// SIMD CPU kernels (Highway, dynamic dispatch) that are bit-identical to the scalar oracle in ops.h
// on every target and thread count. Each one follows the same arithmetic as its scalar twin: the
// dot products use the 32-lane FMA contract of cpu::dot_lanes (lane i % 32, increasing i, fold in
// halves), the elementwise parts the same operations in the same order, one rounding per op.
// See docs/KERNELS.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"

namespace fusecheck::cpu {

// Same contract and results as cpu::linear: out[t, r] = round_one(t, dot_lanes(x[t, :], W[r, :])
// (+ bias[r])) for t < T, r < W.rows. W (bf16, f16 or f32, possibly unaligned, read in place from
// the memory map) is never converted as a whole. T == 1 streams each row once (decode GEMV);
// T > 1 converts small tiles of rows to fp32 and applies each to blocks of tokens (prefill GEMM),
// so the weights are read from memory once per call. Rows are partitioned over `pool`
// (nullptr: the calling thread only).
// x: [T, W.cols], out: [T, W.rows], bias: [W.rows] (its .cols) or absent.
void linear_simd(float* out, const float* x, int64_t T, const Weight& w, const Weight& bias,
                 ActType t, ThreadPool* pool);

// Same result as cpu::dot_lanes. a, b: [n].
float dot_lanes_simd(const float* a, const float* b, int64_t n);

// Same contract and results as cpu::attention_head (the q.k scores use dot_lanes_simd, the softmax
// is the oracle's softmax_rounded, and P.V is vectorised over head_dim with the oracle's separate
// multiply and add, in increasing j). q: [head_dim]; out: [head_dim]; scores: scratch [n_ctx].
void attention_head_simd(float* out, const float* q, const KvRows& kv, int64_t n_ctx,
                         int64_t head_dim, float scale, ActType t, float* scores);
// The same over fp32 rows kv_stride floats apart.
void attention_head_simd(float* out, const float* q, const float* keys, const float* values,
                         int64_t n_ctx, int64_t kv_stride, int64_t head_dim, float scale, ActType t,
                         float* scores);

// acc[i] = acc[i] + p * v[i] (a multiply, then an add), i < n.
void add_scaled_simd(float* acc, float p, const float* v, int64_t n);
// n bf16 / f16 values (bit patterns) to fp32, exactly.
void bf16_to_f32_simd(const uint16_t* src, int64_t n, float* dst);
void f16_to_f32_simd(const uint16_t* src, int64_t n, float* dst);

// Streams a buffer much larger than the last-level cache (`bytes`, default 512 MiB) with every
// thread of `pool` (nullptr: one thread), `reps` times, and returns the best read bandwidth in
// GB/s (1e9 bytes per second). Allocates and first-touches the buffer itself.
double measure_read_bandwidth_gbs(ThreadPool* pool, size_t bytes = size_t{512} << 20, int reps = 5);

// The Highway targets compiled into these kernels that this CPU supports (HWY_AVX2, ...), best
// first; tests pass each to hwy::SetSupportedTargetsForTest to run every code path.
std::vector<int64_t> simd_targets();
// Their names ("AVX2", ...), best first.
std::vector<std::string> simd_target_names();
// Restricts dispatch to the named target for the rest of the process (Highway's DisableTargets);
// false when this CPU does not run it. Results are bit-identical on every target.
bool use_only_simd_target(const std::string& name);
// The target the kernels dispatch to now, e.g. "AVX2".
const char* simd_target_name();

}  // namespace fusecheck::cpu
