// The backend seam: the one table of batched ops the model runs a forward pass with, and the
// memory those ops read and write. The CPU backend (kernels/cpu/cpu_backend.h) wraps the SIMD and
// fused kernels; a GPU backend implements the same table over device memory and a stream.
//
// Contract for every implementation:
// - Every pointer an op takes is backend memory (Backend::alloc, Backend::adopt_weight): host
//   memory on the CPU, device memory on a GPU. The model never dereferences it; it moves data in
//   and out only with upload/download.
// - Ops are enqueued in call order on the backend's one stream and may return before they finish;
//   download (and synchronize) wait for everything queued before them. A CPU backend runs each op
//   to completion on its thread pool.
// - Ops allocate nothing and never wait for the host: everything a step needs that changes from
//   step to step (token ids, the first position pos0) is read from backend memory, so a decode
//   step (T = 1) can be captured once as a graph and replayed with new values. Shapes (T, rows,
//   heads) are host arguments: a captured graph is for one shape.
// - Numerics: every op computes exactly what its scalar reference in kernels/cpu/ops.h or
//   kernels/cpu/fused.h computes (docs/NUMERICS.md, docs/KERNELS.md). The CPU backend is
//   bit-identical to them on every ISA and thread count; tests/test_backend_ops.cpp measures any
//   backend against them per op (NMSE) over swept sizes.
// - Activations are fp32 buffers holding values already rounded to the op's ActType.
//
// Shape names: T = tokens of the call, dim = hidden size, hd = head dim, nh / nkv = query / kv
// heads, kv_dim = nkv * hd, n_ctx = pos0 + T (positions attended to by the call's last token).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kernels/dot_choice.h"
#include "kernels/numerics_profile.h"
#include "kernels/types.h"
#include "util/result.h"

namespace fusecheck {

class Backend;

// Memory owned by a backend, freed when the last handle goes (move-only). The backend outlives it:
// a Buffer keeps its backend alive.
class Buffer {
 public:
  Buffer() = default;
  Buffer(std::shared_ptr<Backend> owner, void* data, size_t bytes);
  ~Buffer();
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  float* f32() const { return static_cast<float*>(data_); }
  int32_t* i32() const { return static_cast<int32_t*>(data_); }
  explicit operator bool() const { return data_ != nullptr; }

 private:
  std::shared_ptr<Backend> owner_;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// How the KV cache stores one value. F32/BF16/F16: the value itself (kSame stores the path's
// activation type: lossless). Int8: a symmetric int8 code, value = code * scale. Fp8E4M3: an e4m3fn
// code (bit pattern), value = e4m3(code) * scale. Dequantising gives back exactly what
// quantise-dequantise gives (cpu::int8_roundtrip, cpu::fp8_roundtrip).
enum class KvStorage : uint8_t { F32, BF16, F16, Int8, Fp8E4M3 };
inline size_t kv_storage_bytes(KvStorage s) {
  return s == KvStorage::F32 ? 4 : (s == KvStorage::Int8 || s == KvStorage::Fp8E4M3) ? 1 : 2;
}

// One layer of the KV cache as the ops see it. Row p (position p) of k and v holds kv_dim values
// of `storage`, kv head h at [h * hd, (h + 1) * hd).
struct KvLayer {
  KvStorage storage = KvStorage::F32;
  KvScale scale_kind = KvScale::kPerTensor;
  int64_t n_kv_heads = 0, head_dim = 0;
  int64_t capacity = 0;  // rows allocated
  void* k = nullptr;     // [capacity, kv_dim] backend memory
  void* v = nullptr;     // [capacity, kv_dim]
  // Int8 / Fp8E4M3 only (else nullptr): [1] (per tensor) or [kv_dim] (per channel), backend
  // memory. All zero = not calibrated yet: the layer's first kv_append sets them to amax / qmax of
  // the values it stores (1 where amax is 0) — static scales calibrated on the prompt.
  float* k_scale = nullptr;
  float* v_scale = nullptr;
};

// RoPE cos/sin in fp32 for positions [0, n_pos): [n_pos, hd / 2] each (transformers repeats them
// for both halves). The standard path rounds them to its ActType on use, as transformers casts
// them; the fused path uses them as they are.
struct RopeTable {
  const float* cos = nullptr;
  const float* sin = nullptr;
  int64_t n_pos = 0;
};

// The q, k, v projections of one layer. Biases absent except Qwen2's.
struct QkvWeights {
  Weight q, k, v;     // [nh*hd, dim], [kv_dim, dim], [kv_dim, dim]
  Weight bq, bk, bv;  // [1, nh*hd], [1, kv_dim], [1, kv_dim] or absent
};

struct AttentionParams {
  int64_t T = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 1.0f;  // head_dim ** -0.5
  ActType act = ActType::F32;
  // false: eager (cpu::attention_head: scores rounded, two-pass softmax in double).
  // true: one pass with an online softmax in fp32, the output rounded once (cpu::fused_attention).
  bool online = false;
  bool fp16_accumulation = false;  // online only: q.k accumulated in fp16
};

class Backend : public std::enable_shared_from_this<Backend> {
 public:
  virtual ~Backend() = default;

  // "cpu AVX3_SPR, 2 threads": what runs, for bench output.
  virtual std::string name() const = 0;
  // Host threads the ops are split over (1 on a GPU backend).
  virtual int threads() const = 0;
  // Best read bandwidth of the memory the weights live in, GB/s (1e9 B/s), measured now.
  virtual double read_bandwidth_gbs() = 0;
  // The first failure of an op or a memory call since the backend was made (ops return void and
  // run asynchronously): the model checks it after each download and returns it as an error. A
  // failed backend's later results are not to be used (the CUDA backend fills them with NaN).
  virtual Status status() const { return ok_status(); }
  // The dot product linear, logits, rmsnorm_qkv and gate_up_silu use from now on (the model sets
  // its plan's before each pass). Every backend runs the contract; false: `d` is not supported
  // (the contract keeps running). The CPU backend also runs kBf16Pairs, on bf16 weights of the
  // model-dtype (ActType::BF16) path only.
  virtual bool set_dot(DotChoice d) { return d == DotChoice::kContract; }

  // --- memory ---
  // `bytes` of backend memory, zero-filled, aligned to at least 64 bytes.
  virtual Buffer alloc(size_t bytes) = 0;
  // Host -> backend and back, `bytes` at byte `offset` of the buffer. download waits for the ops
  // queued before it.
  virtual void upload(const Buffer& dst, size_t offset, const void* src, size_t bytes) = 0;
  virtual void download(void* dst, const Buffer& src, size_t offset, size_t bytes) = 0;
  // Waits for every queued op.
  virtual void synchronize() = 0;
  // The weight as this backend reads it: the CPU returns it unchanged (zero copy from the map); a
  // device backend copies it once into memory it owns for its lifetime. Absent stays absent.
  virtual Weight adopt_weight(const Weight& host) = 0;
  // Releases what the backend frees itself (Buffer's destructor calls it).
  virtual void free(void* data, size_t bytes) = 0;

  // --- ops (all pointers backend memory; rows = tokens unless noted) ---
  // out[t, :] = table[tokens[t], :] as fp32. tokens: [T] int32; out: [T, table.cols].
  virtual void embed(float* out, const int32_t* tokens, int64_t T, const Weight& table) = 0;
  // cpu::rmsnorm on each of `rows` rows of n. x, out: [rows, n] (may alias); gain: [n].
  virtual void rmsnorm(float* out, const float* x, const float* gain, int64_t rows, int64_t n,
                       float eps, ActType t) = 0;
  // cpu::fused_add_rmsnorm on each row: h = round(h + delta), normed = round(norm(h + delta)) from
  // the unrounded sum; delta == nullptr: no add; sum_out (optional) receives the fp32 sum.
  // h, delta, normed, sum_out: [rows, n]; gain: [n].
  virtual void add_rmsnorm(float* h, const float* delta, float* normed, float* sum_out,
                           const float* gain, int64_t rows, int64_t n, float eps, ActType t) = 0;
  // cpu::linear: out[t, r] = round(dot_lanes(x[t, :], w[r, :]) (+ bias[r])).
  // x: [T, w.cols]; out: [T, w.rows]; bias: [1, w.rows] or absent.
  virtual void linear(float* out, const float* x, int64_t T, const Weight& w, const Weight& bias,
                      ActType t) = 0;
  // linear (no bias), then the residual add of add_rmsnorm on its result, per element
  // (cpu::fused_add_residual): delta = round(dot_lanes(x[t, :], w[r, :])); s = h + delta (fp32);
  // h = round(s); sum = s. Bit-identical to linear(delta, x, T, w, {}, t) and the add of
  // add_rmsnorm(h, delta, ...) (a GPU does it in the GEMV's epilogue: no separate add kernel).
  // x: [T, w.cols]; delta, h, sum: [T, w.rows].
  virtual void linear_add_residual(float* delta, float* h, float* sum, const float* x, int64_t T,
                                   const Weight& w, ActType t) = 0;
  // cpu::fused_rmsnorm_qkv: the fp32 normalised input (xn: scratch [T, dim]) feeds q, k, v.
  // x: [T, dim]; gain: [dim]; q: [T, nh*hd]; k, v: [T, kv_dim].
  virtual void rmsnorm_qkv(float* q, float* k, float* v, const float* x, int64_t T,
                           const float* gain, float eps, const QkvWeights& w, ActType t,
                           float* xn) = 0;
  // Per-head q/k norm (gain != nullptr) and RoPE for token t at position pos0[0] + t, in place.
  // fused == false: cpu::rmsnorm per head then cpu::rope_rotate_half with cos/sin rounded to t.
  // fused == true: cpu::fused_qk_norm_rope with fp32 cos/sin.
  // x: [T, n_heads * hd]; gain: [hd]; pos0: [1] int32; rope covers pos0 + T positions.
  virtual void qk_norm_rope(float* x, int64_t T, int64_t n_heads, int64_t head_dim,
                            const float* gain, float eps, const RopeTable& rope,
                            const int32_t* pos0, ActType t, bool fused) = 0;
  // qk_norm_rope of a layer's q and k in one op: bit-identical to qk_norm_rope(q.x, T, q.n_heads,
  // head_dim, q.gain, ...) then the same for k (a GPU runs both in one launch).
  struct NormRopeHeads {
    float* x = nullptr;           // [T, n_heads * hd], in place
    int64_t n_heads = 0;          // nh for q, nkv for k
    const float* gain = nullptr;  // [hd] or nullptr (no norm)
  };
  virtual void qk_norm_rope_pair(const NormRopeHeads& q, const NormRopeHeads& k, int64_t T,
                                 int64_t head_dim, float eps, const RopeTable& rope,
                                 const int32_t* pos0, ActType t, bool fused) = 0;
  // qk_norm_rope_pair, then kv_append(kv, k.x, v, T, pos0) of the rotated keys and the values:
  // bit-identical to the two (a GPU runs both in one launch when fused and the cache needs no
  // calibration: fp32, bf16 or fp16 storage). v: [T, kv_dim].
  virtual void qk_norm_rope_kv_append(const NormRopeHeads& q, const NormRopeHeads& k,
                                      const float* v, const KvLayer& kv, int64_t T,
                                      int64_t head_dim, float eps, const RopeTable& rope,
                                      const int32_t* pos0, ActType t, bool fused) = 0;
  // Stores T rows of keys and values at positions pos0[0] .. + T in the layer's format
  // (calibrating int8/fp8 scales on the layer's first append, see KvLayer). k, v: [T, kv_dim].
  // Rows must fit kv.capacity.
  virtual void kv_append(const KvLayer& kv, const float* k, const float* v, int64_t T,
                         const int32_t* pos0) = 0;
  // Causal attention reading the cache (the CPU converts a 16/8-bit layer's context to fp32 once
  // per call, shared by all heads and tokens; CUDA reads it in place, tile by tile): token t at
  // position pos0 + t attends to positions [0, pos0 + t], query head h to kv head
  // h / (nh / nkv). q: [T, nh*hd]; out: [T, nh*hd]; the cache holds this call's rows already.
  virtual void attention(float* out, const float* q, const KvLayer& kv, const int32_t* pos0,
                         const AttentionParams& p) = 0;
  // cpu::add / cpu::silu_mul elementwise over n values.
  virtual void add(float* out, const float* a, const float* b, int64_t n, ActType t) = 0;
  virtual void silu_mul(float* out, const float* gate, const float* up, int64_t n, ActType t) = 0;
  // cpu::fused_gate_up_silu: gate and up stay fp32 (scratch [T, ffn] each), one rounding.
  // x: [T, dim]; out: [T, ffn].
  virtual void gate_up_silu(float* out, const float* x, int64_t T, const Weight& wg,
                            const Weight& wu, ActType t, float* gate, float* up) = 0;
  // The RMSNorm of add_rmsnorm on a residual sum it did not form (cpu::fused_rmsnorm: normed =
  // round(gain * (s * inv_rms(s))), one rounding, as add_rmsnorm's normed), then gate_up_silu on
  // normed: bit-identical to the two (a GPU normalises inside the gate_up kernel, as rmsnorm_qkv
  // does). sum: [T, dim] fp32 (linear_add_residual's); gain: [dim]; normed: [T, dim] (written);
  // out: [T, wg.rows]; gate, up: scratch [T, wg.rows].
  virtual void rmsnorm_gate_up_silu(float* out, float* normed, const float* sum, int64_t T,
                                    const float* gain, float eps, const Weight& wg,
                                    const Weight& wu, ActType t, float* gate, float* up) = 0;
  // The lm_head: out[t, :] = round(dot_lanes(x[t, :], lm_head[r, :])). x: [T, dim];
  // out: [T, vocab].
  virtual void logits(float* out, const float* x, int64_t T, const Weight& lm_head, ActType t) = 0;

  // --- a decode step's layers as one op (optional: a backend without it keeps this default) ---
  // One layer's weights and cache as layer_forward passes them to the ops.
  struct StackLayer {
    const QkvWeights* qkv = nullptr;
    const float* input_norm = nullptr;  // [dim]
    const float* q_norm = nullptr;      // [hd] or nullptr
    const float* k_norm = nullptr;      // [hd] or nullptr
    const Weight* o_proj = nullptr;     // [dim, nh*hd]
    const float* post_norm = nullptr;   // [dim]
    const Weight* gate = nullptr;       // [ffn, dim]
    const Weight* up = nullptr;         // [ffn, dim]
    const Weight* down = nullptr;       // [dim, ffn]
    const KvLayer* kv = nullptr;
  };
  // A decode step (T = 1) through every layer of a plan that fuses every group in every layer
  // with fp32 accumulation. Activations ([1, n] each): hidden, sum, normed, attn_out, mlp_out
  // [dim]; q, attn [nh*hd]; k, v [kv_dim]; mlp_act [ffn].
  struct DecoderStack {
    const StackLayer* layers = nullptr;
    int64_t n_layers = 0, dim = 0, ffn = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
    float eps = 0.0f;
    ActType act = ActType::F32;
    RopeTable rope;
    const int32_t* pos0 = nullptr;  // [1]
    float *hidden = nullptr, *sum = nullptr, *normed = nullptr, *q = nullptr, *k = nullptr,
          *v = nullptr, *attn = nullptr, *attn_out = nullptr, *mlp_act = nullptr,
          *mlp_out = nullptr;
  };
  // Runs, bit-identical to them, the ops layer_forward issues for each layer once layer 0's
  // add_rmsnorm has formed sum: rmsnorm_qkv on sum, qk_norm_rope_kv_append (fused), attention
  // (online), linear_add_residual (o_proj), rmsnorm_gate_up_silu, then linear_add_residual
  // (down_proj, the next layer's add) or, for the last layer, linear (down_proj; the final norm
  // adds it). Returns false, having queued nothing, when this backend does not run the stack in
  // one op for this shape (the caller issues the ops). A GPU runs it as one persistent launch.
  virtual bool decoder_stack(const DecoderStack& s) {
    (void)s;
    return false;
  }
  // How many decoder_stack calls ran the stack (bench output and tests; a recorded graph's
  // replays are not calls).
  virtual int64_t decoder_stack_runs() const { return 0; }

  // --- decode graphs (optional: a backend without them, the CPU's, keeps these defaults and the
  // model never calls the rest) ---
  virtual bool supports_graphs() const { return false; }
  // The ops issued between begin_capture and end_capture are recorded, not run; end_capture
  // returns the recorded graph's id (>= 0), or -1 when recording failed (status() says why).
  // A graph holds the pointers and shapes it was recorded with: the caller re-records when any
  // buffer it uses moves.
  virtual void begin_capture() {}
  virtual int end_capture() { return -1; }
  virtual void replay(int graph) { (void)graph; }
  virtual void drop_graph(int graph) { (void)graph; }
  // Greedy sampling's end of a decode step, on the device: tokens[0] = argmax of logits[0 .. n)
  // (the lowest index among equals, NaN never chosen, all-NaN gives 0: cpu argmax in
  // model/sampler.h), then pos0[0] += 1. So the next step's input is already in place.
  // tokens, pos0: [1] int32; logits: [n].
  virtual void argmax_advance(int32_t* tokens, const float* logits, int64_t n, int32_t* pos0) {
    (void)tokens, (void)logits, (void)n, (void)pos0;
  }
  // Sampling's end of a decode step, on the device (optional: supports_device_sampling):
  // tokens[0] = the token model/sampler.h's Sampler::pick chooses from logits[0 .. n) for the
  // draw last given to set_draw, then pos0[0] += 1. The draw lives in device memory, so a
  // recorded step reads the new one each replay. tokens, pos0: [1] int32; logits: [n].
  struct SampleOptions {
    float temperature = 1.0f;  // > 0
    int64_t top_k = 0;         // 0: off
    float top_p = 1.0f;        // 1: off
    float min_p = 0.0f;        // 0: off
  };
  virtual bool supports_device_sampling() const { return false; }
  // u in [0, 1): written to the device slot sample_advance reads (ordered before later ops).
  virtual void set_draw(double u) { (void)u; }
  virtual void sample_advance(int32_t* tokens, const float* logits, int64_t n,
                              const SampleOptions& s, int32_t* pos0) {
    (void)tokens, (void)logits, (void)n, (void)s, (void)pos0;
  }
};

}  // namespace fusecheck
