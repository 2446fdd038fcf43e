// CUDA kernels for the engine's ops, host-callable from plain C++ (this header includes no CUDA
// header). Every pointer is device memory; every launch is asynchronous on `stream` and returns the
// launch's cudaError_t as an int (0 = launched). Shapes are row-major; T = tokens in the batch.
//
// Activations are fp32 buffers holding values already rounded to the activation type (as on the
// CPU, src/kernels/cpu/ops.h), so each kernel here rounds exactly where its CPU twin does:
// the standard kernels where PyTorch eager rounds, the fused ones only at their outputs
// (docs/NUMERICS.md, section "CUDA kernels"). Positions and context lengths are read from device
// memory (`pos`), so a decode step needs no host value and can be captured as a CUDA graph.
#pragma once

#include <cstddef>
#include <cstdint>

struct CUstream_st;

namespace fusecheck::cuda {

using Stream = CUstream_st*;

// The type an op's output is rounded to (same values as fusecheck's ActType).
enum class Act : uint8_t { F32, BF16, F16 };
// A weight's storage type (the backend maps the checkpoint's DType onto it).
enum class WType : uint8_t { F32, F16, BF16 };
// A KV cache's element type. INT8 and FP8 (e4m3) carry scales: one per tensor or one per channel.
enum class KvType : uint8_t { F32, BF16, F16, INT8, FP8 };

// A weight matrix in device memory: rows = output features, cols = input features.
struct DevWeight {
  WType type = WType::BF16;
  const void* data = nullptr;  // [rows, cols]
  int64_t rows = 0, cols = 0;
};

// ---- runtime helpers (device.cu) ----
int device_count();  // 0 when no GPU or no driver (never throws)
const char* error_string(int err);
int last_error();  // cudaGetLastError()
int malloc_device(void** p, size_t bytes);
int free_device(void* p);
int copy_to_device(void* dst, const void* src, size_t bytes);  // synchronous
int copy_to_host(void* dst, const void* src, size_t bytes);    // synchronous
int synchronize();
int stream_create(Stream* s);  // a non-blocking stream (staged GEMVs overlap only off nullptr)
int stream_destroy(Stream s);

// ---- GEMV following the 32-lane dot-product contract (gemv.cu) ----
// out[t, r] = round(dot_lanes(x[t, :], W[r, :]) + bias[r]): bit-identical to cpu::linear.
// Four threads per row, each loading 16 bytes per 32-element block and owning 8 contract lanes;
// the fold is done by shuffles within the group. x: [T, cols] fp32; out: [T, rows];
// bias: [rows] fp32 or nullptr. `variant` is the load schedule (same results, other speed):
// U blocks of 32 elements whose weights and x are loaded before their FMAs; kStaged: each block's
// whole [8, cols] tile in flight at once through shared memory (bf16/f16 weights, 16-byte aligned
// x and w, cols % 8 == 0; else u16), launched so that it overlaps the previous kernel on a
// non-default stream (programmatic dependent launch). kDefault = kStaged up to 32768 rows, else
// kU16Early (docs/NUMERICS.md, CUDA section). rmsnorm_qkv and gate_up_silu stage the same way.
enum class GemvVariant : uint8_t { kDefault, kU8Early, kU16Early, kStaged };
int gemv(float* out, const float* x, int64_t T, const DevWeight& w, const float* bias, Act act,
         Stream stream, GemvVariant variant = GemvVariant::kDefault);

// Fused RMSNorm → Q/K/V projections: xn = gain · (x · inv_rms(x)) stays fp32 inside the kernel and
// feeds the three projections; q, k, v are rounded once each (bias added in fp32). One launch.
// x: [T, dim]; gain: [dim] fp32; q: [T, wq.rows]; k: [T, wk.rows]; v: [T, wv.rows];
// bq/bk/bv: [rows] fp32 or nullptr.
int rmsnorm_qkv(float* q, float* k, float* v, const float* x, int64_t T, const float* gain,
                float eps, const DevWeight& wq, const DevWeight& wk, const DevWeight& wv,
                const float* bq, const float* bk, const float* bv, Act act, Stream stream);

// Fused gate/up projections and silu(gate) · up, gate and up in fp32, one rounding.
// x: [T, dim]; out: [T, wg.rows].
int gate_up_silu(float* out, const float* x, int64_t T, const DevWeight& wg, const DevWeight& wu,
                 Act act, Stream stream);

// gemv (no bias) with add_rmsnorm's residual add in its epilogue: delta[t, r] = round(dot);
// s = h[t, r] + delta[t, r] (fp32); h[t, r] = round(s); sum[t, r] = s. Bit-identical to gemv then
// add_residual (below), which it runs as when the staged kernel does not apply.
// x: [T, w.cols]; delta, h, sum: [T, w.rows].
int gemv_add_residual(float* delta, float* h, float* sum, const float* x, int64_t T,
                      const DevWeight& w, Act act, Stream stream);

// add_rmsnorm's norm on the fp32 sum s, then gate_up_silu on it, in one launch (the staged
// kernel: each block normalises the row in shared memory, block 0 stores it): normed[t, :] =
// round(gain · (s · inv_rms(s))) with add_rmsnorm's sum of squares (the same threads, the same
// order, so the same bits), then out = round(silu(g) · u) of normed. Else fused_rmsnorm then
// gate_up_silu. s, normed: [T, dim]; gain: [dim]; out: [T, wg.rows].
int rmsnorm_gate_up_silu(float* out, float* normed, const float* s, int64_t T, const float* gain,
                         float eps, const DevWeight& wg, const DevWeight& wu, Act act,
                         Stream stream);

// ---- prefill GEMM through cuBLASLt (gemm.cu) ----
// A cuBLASLt handle, workspace and a staging buffer for x in the weight type.
struct GemmContext;
GemmContext* gemm_create(int64_t max_tokens, int64_t max_cols, Stream stream);
void gemm_destroy(GemmContext* ctx);
// out[t, r] = round(sum_c x[t, c] W[r, c] + bias[r]) with fp32 accumulation on the tensor cores
// (not the lane contract: a tolerance op). x must hold values exact in the weight type (true on
// the standard path); fp32 weights run an fp32 GEMM with TF32 off. x: [T, cols]; out: [T, rows].
int gemm(GemmContext* ctx, float* out, const float* x, int64_t T, const DevWeight& w,
         const float* bias, Act act);

// ---- fused prefill projections on the tensor cores (split_gemm.cu) ----
// The fused groups' fp32 x split exactly into three bf16 pieces (hi + mid + lo == x for
// 2^-110 <= |x| < 2^128 - 2^119), one cuBLASLt GEMM per weight over the stacked pieces [3T, K]
// with fp32 accumulation, and an epilogue that sums a token's partial rows in a fixed order,
// adds the bias in fp32 and rounds once where the CPU twin does. Tolerance ops (the tensor cores'
// order, not the lane contract). Weights bf16 or fp32 (an fp32 GEMM, TF32 off, no split); f16
// weights are refused (cudaErrorInvalidValue): their split needs range handling, they stay on
// the GEMV kernels above.
// kStacked: one GEMM of 3T rows per weight; kBetaOne: three GEMMs of T rows, beta = 1.
enum class SplitGemm : uint8_t { kStacked, kBetaOne, kDefault = kStacked };
// Same contract as rmsnorm_qkv above. ctx: the prefill GEMM's context (its buffers grow here).
int rmsnorm_qkv_gemm(GemmContext* ctx, float* q, float* k, float* v, const float* x, int64_t T,
                     const float* gain, float eps, const DevWeight& wq, const DevWeight& wk,
                     const DevWeight& wv, const float* bq, const float* bk, const float* bv,
                     Act act, SplitGemm mode = SplitGemm::kDefault);
// Same contract as gate_up_silu above. x_exact: every x is a bf16 value (the bf16 path's rounded
// activations), so one piece carries it exactly and the split is skipped.
int gate_up_silu_gemm(GemmContext* ctx, float* out, const float* x, int64_t T, const DevWeight& wg,
                      const DevWeight& wu, Act act, bool x_exact,
                      SplitGemm mode = SplitGemm::kDefault);
// The split alone (tests): pieces[0, n) = hi, [n, 2n) = mid, [2n, 3n) = lo of x[0, n), bf16 bits.
int split_bf16(uint16_t* pieces, const float* x, int64_t n, Stream stream);

// ---- norms (norm.cu) ----
// Standard RMSNorm as transformers writes it, per row: y = round(x · rsqrt(mean(x²) + eps)),
// out = round(gain · y); mean(x²) in double. x, out: [rows, n]; gain: [n] fp32.
// Also q/k-norm: rows = T · heads, n = head_dim.
int rmsnorm(float* out, const float* x, const float* gain, int64_t rows, int64_t n, float eps,
            Act act, Stream stream);
// Fused residual add + RMSNorm: s = h + delta (fp32); h = round(s); normed = round_normed(gain ·
// s · inv_rms(s)); sum_out (optional) = s. delta == nullptr: s = h. h, delta, normed, sum_out:
// [rows, n].
int add_rmsnorm(float* h, const float* delta, float* normed, float* sum_out, const float* gain,
                int64_t rows, int64_t n, float eps, Act act, Act act_normed, Stream stream);
// add_rmsnorm's norm alone on a sum it did not form: normed = round(gain · (s · inv_rms(s))),
// the same kernel code and sum order as add_rmsnorm's. s, normed: [rows, n]; gain: [n].
int fused_rmsnorm(float* normed, const float* s, const float* gain, int64_t rows, int64_t n,
                  float eps, Act act, Stream stream);

// ---- elementwise (elementwise.cu) ----
int add(float* out, const float* a, const float* b, int64_t n, Act act, Stream stream);  // [n]
// add_rmsnorm's add alone: s = h + delta (fp32); h = round(s); sum = s. h, delta, sum: [n].
int add_residual(float* h, const float* delta, float* sum, int64_t n, Act act, Stream stream);
// gate = round(silu(gate)); out = round(gate · up). gate, up, out: [n].
int silu_mul(float* out, float* gate, const float* up, int64_t n, Act act, Stream stream);
// out[t, :] = row ids[t] of the embedding table (fp32 widening, no rounding). ids: [T] int32;
// table: [vocab, dim]; out: [T, dim].
int embed(float* out, const int32_t* ids, int64_t T, const DevWeight& table, Stream stream);
// Greedy sampling on the device: *out = argmax_i x[i] (lowest index on ties, NaN never chosen),
// then *advance += 1 when advance is given (the decode position, for a replayed step). x: [n].
int argmax(int32_t* out, const float* x, int64_t n, Stream stream, int32_t* advance = nullptr);

// ---- sampling (sample.cu) ----
// The CPU Sampler's parameters (model/sampler.h) without the random seed: temperature > 0; top_k 0
// = off; top_p 1 = off; min_p 0 = off.
struct SampleArgs {
  float temperature = 1.0f;
  int64_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
};
// Bytes of the workspace sample() needs for n logits (keys, ids, their sorted copies, CUB's).
size_t sample_workspace_bytes(int64_t n);
// *out = the token the CPU Sampler picks from x with the uniform draw *draw in [0, 1) (device
// memory, so a recorded step reads each step's new draw), then *advance += 1 when given.
// x: [n]; ws: sample_workspace_bytes(n) bytes. No host synchronisation, no allocation.
int sample(int32_t* out, const float* x, int64_t n, const SampleArgs& a, const double* draw,
           void* ws, Stream stream, int32_t* advance = nullptr);

// ---- RoPE (rope.cu) ----
// The rotation tables cos/sin: [max_pos, head_dim/2] fp32, computed once on the host exactly as
// the CPU's Rope::cos_sin does (before rounding). Token t of the batch is at position *pos + t.
// Standard: cos/sin rounded to act, then round(round(x·cos) + round(rotate_half(x)·sin)).
// x: [T, heads, head_dim] in place.
int rope(float* x, int64_t T, int64_t heads, int64_t head_dim, const float* cos_tab,
         const float* sin_tab, const int32_t* pos, Act act, Stream stream);
// Fused per-head RMSNorm (gain != nullptr) + RoPE with fp32 cos/sin, one rounding.
// x: [T, heads, head_dim] in place; gain: [head_dim].
int qk_norm_rope(float* x, int64_t T, int64_t heads, int64_t head_dim, const float* gain, float eps,
                 const float* cos_tab, const float* sin_tab, const int32_t* pos, Act act,
                 Stream stream);
// qk_norm_rope of q (q_heads heads, q_gain) and of k (k_heads heads, k_gain) in one launch; each
// head bit-identical to the two calls. q: [T, q_heads, head_dim]; k: [T, k_heads, head_dim], both
// in place; q_gain, k_gain: [head_dim] or nullptr.
int qk_norm_rope_pair(float* q, int64_t q_heads, const float* q_gain, float* k, int64_t k_heads,
                      const float* k_gain, int64_t T, int64_t head_dim, float eps,
                      const float* cos_tab, const float* sin_tab, const int32_t* pos, Act act,
                      Stream stream);

// ---- KV cache and attention (attention.cu) ----
// One layer's cache side (keys or values): [max_ctx, kv_dim] elements of `type`, kv_dim =
// kv_heads · head_dim. INT8/FP8: value = q · scale (scale[c] per channel, or scale[0] per tensor).
struct KvView {
  KvType type = KvType::BF16;
  void* data = nullptr;
  float* scale = nullptr;  // [kv_dim] or [1]; device memory; unused for F32/BF16/F16
  bool per_channel = false;
};
// Calibrates INT8/FP8 scales on the first store (amax / qmax, 1 when amax is 0), as the CPU cache
// does: scales that are all zero mean "not calibrated yet" (checked on the device, so a captured
// step can call it every time); a no-op for other types. x: [T, kv_dim].
int kv_calibrate(KvView kv, const float* x, int64_t T, int64_t kv_dim, Stream stream);
// Stores T rows at positions *pos .. *pos+T-1 (quantising INT8/FP8, rounding F16/BF16).
int kv_append(KvView kv, const float* x, int64_t T, int64_t kv_dim, const int32_t* pos,
              Stream stream);
// kv_append of K (xk into k) and V (xv into v) in one launch; the same stores.
int kv_append_pair(KvView k, const float* xk, KvView v, const float* xv, int64_t T, int64_t kv_dim,
                   const int32_t* pos, Stream stream);
// qk_norm_rope_pair, then the rotated k and the values v stored at cache rows *pos + t (as
// kv_append_pair stores them), in one launch (rope.cu): blocks of q heads, of k heads (rotated,
// then stored) and of v heads. F32/BF16/F16 caches only (INT8/FP8: cudaErrorInvalidValue; their
// scales are calibrated on the whole append first). v: [T, k_heads, head_dim]; kc, vc: the layer's
// cache sides, [max_ctx, k_heads · head_dim].
int qk_norm_rope_kv_append(float* q, int64_t q_heads, const float* q_gain, float* k,
                           int64_t k_heads, const float* k_gain, const float* v, const KvView& kc,
                           const KvView& vc, int64_t T, int64_t head_dim, float eps,
                           const float* cos_tab, const float* sin_tab, const int32_t* pos, Act act,
                           Stream stream);

// Dequantises rows [0, n) of the cache to fp32 (tests and the probe). out: [n, kv_dim].
int kv_read(float* out, KvView kv, int64_t n, int64_t kv_dim, Stream stream);

// Causal attention of T query tokens at positions *pos + t over the cache (keys 0 .. *pos + t).
// q, out: [T, heads, head_dim]; GQA: query head h reads kv head h / (heads / kv_heads).
struct AttnShape {
  int64_t T = 1, heads = 1, kv_heads = 1, head_dim = 128, max_ctx = 0;
  float scale = 1.0f;
};
// Eager (standard): s = round(round(q·k) · scale); p = round(softmax_fp32(s)); out = round(p·V).
// scores: workspace [T, heads, max_ctx] fp32.
int attention_eager(float* out, const float* q, KvView k, KvView v, const int32_t* pos,
                    const AttnShape& s, Act act, float* scores, Stream stream);
// Flash-decoding (fused): keys split over `splits` blocks per head, each an online softmax in
// fp32, then one reduction kernel; the output is rounded once. fp16_acc: q·k accumulates in fp16.
// work: workspace of attention_flash_work_floats(s, splits) floats.
int64_t attention_flash_work_floats(const AttnShape& s, int splits);
int attention_flash(float* out, const float* q, KvView k, KvView v, const int32_t* pos,
                    const AttnShape& s, Act act, bool fp16_acc, int splits, float* work,
                    Stream stream);

// ---- a fused decode step's layers in one persistent launch (decoder.cu) ----
// For T = 1 and a plan that fuses every group in every layer (online attention with fp32
// accumulation, a 16/32-bit cache without scales): the ops the model issues per layer, in one
// cooperative launch of one block per SM, bit-identical to them (docs/NUMERICS.md):
//   rmsnorm_qkv(q, k, v, sum, in_norm), qk_norm_rope_kv_append, attention_flash (splits),
//   gemv_add_residual(attn_out, hidden, sum, attn, wo), rmsnorm_gate_up_silu(mlp_act, normed,
//   sum, post_norm), then gemv_add_residual(mlp_out, hidden, sum, mlp_act, wd), except for the
//   last layer: gemv(mlp_out, mlp_act, wd).
// The first layer's input is in sum (its add_rmsnorm has run). Weights bf16 or f16, all one type.
struct DecoderLayerArgs {
  const void* wq = nullptr;          // [q_rows, dim]
  const void* wk = nullptr;          // [kv_dim, dim]
  const void* wv = nullptr;          // [kv_dim, dim]
  const void* wo = nullptr;          // [dim, q_rows]
  const void* wg = nullptr;          // [ffn, dim]
  const void* wu = nullptr;          // [ffn, dim]
  const void* wd = nullptr;          // [dim, ffn]
  const float* bq = nullptr;         // [q_rows] fp32 or nullptr
  const float* bk = nullptr;         // [kv_dim] fp32 or nullptr
  const float* bv = nullptr;         // [kv_dim] fp32 or nullptr
  const float* in_norm = nullptr;    // [dim] input_layernorm
  const float* post_norm = nullptr;  // [dim] post_attention_layernorm
  const float* q_norm = nullptr;     // [head_dim] or nullptr
  const float* k_norm = nullptr;     // [head_dim] or nullptr
  KvView kc, vc;                     // the layer's cache sides: [max_ctx, kv_dim], F32/BF16/F16
};
struct DecoderArgs {
  const DecoderLayerArgs* layers = nullptr;  // [n_layers], device memory
  int n_layers = 0;
  int dim = 0, ffn = 0, q_rows = 0, kv_dim = 0, q_heads = 0, kv_heads = 0, head_dim = 0;
  int splits = 1;  // the attention's key splits (attention_flash's), at most 64
  float eps = 0.0f, scale = 1.0f;
  Act act = Act::F32;
  const float* cos_tab = nullptr;  // [max_pos, head_dim / 2]
  const float* sin_tab = nullptr;
  const int32_t* pos = nullptr;  // [1] the step's position
  // Activations (T = 1), the model's buffers: hidden, sum, normed, attn_out, mlp_out: [dim];
  // q, attn: [q_rows]; k, v: [kv_dim]; mlp_act: [ffn].
  float *hidden = nullptr, *sum = nullptr, *normed = nullptr, *q = nullptr, *k = nullptr,
        *v = nullptr, *attn = nullptr, *attn_out = nullptr, *mlp_act = nullptr, *mlp_out = nullptr;
  float* work = nullptr;             // attention_flash_work_floats({1, q_heads, ...}, splits)
  unsigned* barrier = nullptr;       // [1] the grid barrier's counter (zeroed before each launch)
  unsigned* head_tickets = nullptr;  // [q_heads] zero, and left zero by each launch
  // The schedule, and diagnostics for the decode-step tool (tests/cuda/decode_step.cpp); the
  // engine sets kDecoderEngineSchedule and no trace. `diag` picks a schedule of the same
  // arithmetic (kDecoderAcqRel, kDecoderPackAttn, kDecoderTickets, kDecoderRopePhase) or leaves
  // parts of the work out (kDecoderSkip*: the results are then meaningless); `trace`, when set,
  // receives block 0's clock64() at each of a layer's kDecoderMarks points and at the end:
  // [n_layers · kDecoderMarks + 1].
  unsigned diag = 0;
  long long* trace = nullptr;
  // Set by decoder_plan: the grid, rows a block per phase, the shared-memory layout.
  int blocks = 0, rows_q = 0, rows_o = 0, rows_g = 0, rows_d = 0;
  size_t buf1_offset = 0, xs_offset = 0, unit_offset = 0, smem_bytes = 0;
};
constexpr unsigned kDecoderSkipWeights = 1;  // no weight tile is loaded
constexpr unsigned kDecoderSkipGemv = 2;     // the projections' phases compute nothing
constexpr unsigned kDecoderSkipRope = 4;  // no q/k norm, RoPE or KV store (with kDecoderRopePhase)
constexpr unsigned kDecoderSkipAttn = 8;  // no attention
constexpr unsigned kDecoderKeyAtATime = 16;  // attention warps load one key's K and V, not four
constexpr unsigned kDecoderGenericKv = 32;   // attention loads through kv_load's runtime switch
// Schedules of the same arithmetic (the kernel's own in parentheses): the barriers and attention
// tickets by release/acquire atomics (not fence.sc, as cooperative groups' grid sync); a block's
// attention units on consecutive (head, split) items (not the items dealt to the blocks in turn),
// as the schedule first measured on an H100 ran them; the unit taking a head's last split ticket
// reduces it (not every block reducing every head as the o_proj phase's input); a RoPE phase of its
// own, a warp a head, between qkv and the attention (not each attention unit forming its q head's
// norm and RoPE, and the unit holding the new position the k and v rows it stores).
constexpr unsigned kDecoderAcqRel = 64;
constexpr unsigned kDecoderPackAttn = 128;
constexpr unsigned kDecoderTickets = 256;
constexpr unsigned kDecoderRopePhase = 512;
// The schedule the engine runs (CudaBackend::decoder_stack), the one measured first. The kernel's
// own schedule (0: five phases, no tickets) passed the same GPU tests and ran at the same speed on
// an H100 (docs/PERFORMANCE.md), so neither replaced the other; the decode-step tool times both.
// The engine keeps the cache loads that ran on a GPU (kDecoderGenericKv) until the typed ones have.
constexpr unsigned kDecoderEngineSchedule =
    kDecoderRopePhase | kDecoderTickets | kDecoderPackAttn | kDecoderGenericKv;
// Trace points of a layer: 0 qkv phase start, 1 its tile landed, 2 RoPE start, 3 attention start,
// 4 block 0's first split written, 5 block 0's attention items done, 6 o_proj start, 7 gate_up
// start, 8 its tile landed, 9 down start.
constexpr int kDecoderMarks = 10;
// The device's grid for the launch (one block per SM) and its largest shared memory a block.
int decoder_blocks(int* blocks, size_t* max_smem);
// Tiles the phases over `blocks` and lays out shared memory; cudaErrorInvalidValue when the
// shape or weight type is not supported or the tiles do not fit max_smem (run the ops then).
int decoder_plan(DecoderArgs& a, WType w, int blocks, size_t max_smem);
int decoder_layers(const DecoderArgs& a, WType w, Stream stream);

}  // namespace fusecheck::cuda
