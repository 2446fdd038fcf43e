#include "kernels/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "util/half.h"

namespace fusecheck {
namespace {

namespace cu = fusecheck::cuda;

constexpr int64_t kGemmMinTokens = 8;
// Rows of cache capacity per attention split in a decode step (see attention()).
constexpr int64_t kDecodeKeysPerSplit = 16;

cu::Act act_of(ActType t) {
  return t == ActType::BF16 ? cu::Act::BF16 : t == ActType::F16 ? cu::Act::F16 : cu::Act::F32;
}
cu::WType wtype_of(DType d) {
  return d == DType::BF16 ? cu::WType::BF16 : d == DType::F16 ? cu::WType::F16 : cu::WType::F32;
}
cu::DevWeight dev(const Weight& w) {
  return {wtype_of(w.dtype), w.data, w.rows, w.cols};
}
cu::KvType kv_type(KvStorage s) {
  switch (s) {
    case KvStorage::F32:
      return cu::KvType::F32;
    case KvStorage::BF16:
      return cu::KvType::BF16;
    case KvStorage::F16:
      return cu::KvType::F16;
    case KvStorage::Int8:
      return cu::KvType::INT8;
    case KvStorage::Fp8E4M3:
      return cu::KvType::FP8;
  }
  return cu::KvType::F32;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(const CudaBackendOptions& o, cudaStream_t st, std::string dev_name)
      : opt_(o), stream_(st), name_(std::move(dev_name)) {}
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    for (cudaGraphExec_t g : graphs_)
      if (g) cudaGraphExecDestroy(g);
    for (void* p : owned_) cudaFree(p);
    cudaFree(scores_);
    cudaFree(work_);
    cudaFree(draw_);
    cudaFree(sample_ws_);
    cudaFree(stack_layers_dev_);
    cudaFree(stack_sync_);
    cu::gemm_destroy(gemm_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda " + name_; }
  int threads() const override { return 1; }
  Status status() const override {
    if (!failed_) return ok_status();
    return make_error("CUDA backend ({}): {}", name_, error_);
  }
  double read_bandwidth_gbs() override;

  Buffer alloc(size_t bytes) override {
    void* p = nullptr;
    if (!check(int(cudaMalloc(&p, std::max<size_t>(bytes, 1)))) ||
        !check(int(cudaMemsetAsync(p, 0, bytes, stream_))))
      return Buffer();
    return Buffer(shared_from_this(), p, bytes);
  }
  void upload(const Buffer& dst, size_t offset, const void* src, size_t bytes) override {
    check(int(cudaMemcpyAsync(static_cast<char*>(dst.data()) + offset, src, bytes,
                              cudaMemcpyHostToDevice, stream_)));
    check(int(cudaStreamSynchronize(stream_)));  // src may be gone once we return
  }
  void download(void* dst, const Buffer& src, size_t offset, size_t bytes) override {
    check(int(cudaMemcpyAsync(dst, static_cast<const char*>(src.data()) + offset, bytes,
                              cudaMemcpyDeviceToHost, stream_)));
    check(int(cudaStreamSynchronize(stream_)));
    if (failed_) poison(dst, bytes);
  }
  void synchronize() override { check(int(cudaStreamSynchronize(stream_))); }
  Weight adopt_weight(const Weight& host) override;
  void free(void* data, size_t) override { cudaFree(data); }

  void embed(float* out, const int32_t* tokens, int64_t T, const Weight& table) override {
    check(cu::embed(out, tokens, T, dev(table), stream_));
  }
  void rmsnorm(float* out, const float* x, const float* gain, int64_t rows, int64_t n, float eps,
               ActType t) override {
    check(cu::rmsnorm(out, x, gain, rows, n, eps, act_of(t), stream_));
  }
  void add_rmsnorm(float* h, const float* delta, float* normed, float* sum_out, const float* gain,
                   int64_t rows, int64_t n, float eps, ActType t) override {
    check(cu::add_rmsnorm(h, delta, normed, sum_out, gain, rows, n, eps, act_of(t), act_of(t),
                          stream_));
  }
  void linear(float* out, const float* x, int64_t T, const Weight& w, const Weight& bias,
              ActType t) override;
  void linear_add_residual(float* delta, float* h, float* sum, const float* x, int64_t T,
                           const Weight& w, ActType t) override {
    if (T >= kGemmMinTokens) {  // a prompt: linear's own choice (cuBLASLt or the GEMV), the add
      linear(delta, x, T, w, Weight{}, t);
      check(cu::add_residual(h, delta, sum, T * w.rows, act_of(t), stream_));
      return;
    }
    check(cu::gemv_add_residual(delta, h, sum, x, T, dev(w), act_of(t), stream_));
  }
  void rmsnorm_qkv(float* q, float* k, float* v, const float* x, int64_t T, const float* gain,
                   float eps, const QkvWeights& w, ActType t, float*) override {
    if (cu::GemmContext* g = fused_gemm(T, w.q)) {
      check(cu::rmsnorm_qkv_gemm(g, q, k, v, x, T, gain, eps, dev(w.q), dev(w.k), dev(w.v),
                                 bias_f32(w.bq), bias_f32(w.bk), bias_f32(w.bv), act_of(t)));
      return;
    }
    check(cu::rmsnorm_qkv(q, k, v, x, T, gain, eps, dev(w.q), dev(w.k), dev(w.v), bias_f32(w.bq),
                          bias_f32(w.bk), bias_f32(w.bv), act_of(t), stream_));
  }
  void qk_norm_rope(float* x, int64_t T, int64_t n_heads, int64_t head_dim, const float* gain,
                    float eps, const RopeTable& rope, const int32_t* pos0, ActType t,
                    bool fused) override;
  void qk_norm_rope_pair(const NormRopeHeads& q, const NormRopeHeads& k, int64_t T,
                         int64_t head_dim, float eps, const RopeTable& rope, const int32_t* pos0,
                         ActType t, bool fused) override;
  void kv_append(const KvLayer& kv, const float* k, const float* v, int64_t T,
                 const int32_t* pos0) override;
  void qk_norm_rope_kv_append(const NormRopeHeads& q, const NormRopeHeads& k, const float* v,
                              const KvLayer& kv, int64_t T, int64_t head_dim, float eps,
                              const RopeTable& rope, const int32_t* pos0, ActType t,
                              bool fused) override;
  void attention(float* out, const float* q, const KvLayer& kv, const int32_t* pos0,
                 const AttentionParams& p) override;
  void add(float* out, const float* a, const float* b, int64_t n, ActType t) override {
    check(cu::add(out, a, b, n, act_of(t), stream_));
  }
  void silu_mul(float* out, const float* gate, const float* up, int64_t n, ActType t) override {
    // The kernel reads gate only (its float* is the CPU signature's in-place twin).
    check(cu::silu_mul(out, const_cast<float*>(gate), up, n, act_of(t), stream_));
  }
  void gate_up_silu(float* out, const float* x, int64_t T, const Weight& wg, const Weight& wu,
                    ActType t, float*, float*) override {
    if (cu::GemmContext* g = fused_gemm(T, wg)) {
      check(cu::gate_up_silu_gemm(g, out, x, T, dev(wg), dev(wu), act_of(t),
                                  t == ActType::BF16 && wg.dtype == DType::BF16));
      return;
    }
    check(cu::gate_up_silu(out, x, T, dev(wg), dev(wu), act_of(t), stream_));
  }
  void rmsnorm_gate_up_silu(float* out, float* normed, const float* sum, int64_t T,
                            const float* gain, float eps, const Weight& wg, const Weight& wu,
                            ActType t, float* gate, float* up) override {
    if (fused_gemm(T, wg)) {  // a prompt on cuBLASLt: the norm, then gate_up_silu's GEMMs
      check(cu::fused_rmsnorm(normed, sum, gain, T, wg.cols, eps, act_of(t), stream_));
      gate_up_silu(out, normed, T, wg, wu, t, gate, up);
      return;
    }
    check(cu::rmsnorm_gate_up_silu(out, normed, sum, T, gain, eps, dev(wg), dev(wu), act_of(t),
                                   stream_));
  }
  void logits(float* out, const float* x, int64_t T, const Weight& lm_head, ActType t) override {
    linear(out, x, T, lm_head, Weight{}, t);
  }

  bool decoder_stack(const DecoderStack& s) override;
  int64_t decoder_stack_runs() const override { return stack_runs_; }

  bool supports_graphs() const override { return true; }
  void begin_capture() override {
    // Thread-local: another thread's CUDA calls (none today) do not break the recording.
    check(int(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal)));
  }
  int end_capture() override;
  void replay(int graph) override {
    if (graph < 0 || size_t(graph) >= graphs_.size() || !graphs_[size_t(graph)]) {
      check(int(cudaErrorInvalidValue));
      return;
    }
    check(int(cudaGraphLaunch(graphs_[size_t(graph)], stream_)));
  }
  void drop_graph(int graph) override {
    if (graph < 0 || size_t(graph) >= graphs_.size() || !graphs_[size_t(graph)]) return;
    cudaStreamSynchronize(stream_);  // a replay may still be running
    cudaGraphExecDestroy(graphs_[size_t(graph)]);
    graphs_[size_t(graph)] = nullptr;
  }
  void argmax_advance(int32_t* tokens, const float* logits, int64_t n, int32_t* pos0) override {
    check(cu::argmax(tokens, logits, n, stream_, pos0));
  }
  bool supports_device_sampling() const override { return true; }
  void set_draw(double u) override {
    if (!draw_ && !check(int(cudaMalloc(&draw_, sizeof(double))))) return;
    draw_host_ = u;  // pageable: the copy is staged before cudaMemcpyAsync returns
    check(
        int(cudaMemcpyAsync(draw_, &draw_host_, sizeof(double), cudaMemcpyHostToDevice, stream_)));
  }
  void sample_advance(int32_t* tokens, const float* logits, int64_t n, const SampleOptions& s,
                      int32_t* pos0) override {
    if (!draw_) set_draw(0.0);
    // Sized on the first (eager) step: n is the vocabulary, so a recorded step never grows it.
    const size_t need = cu::sample_workspace_bytes(n);
    if (need > sample_ws_bytes_) {
      cudaStreamSynchronize(stream_);
      cudaFree(sample_ws_);
      cudaFree(stack_layers_dev_);
      cudaFree(stack_sync_);
      sample_ws_ = nullptr, sample_ws_bytes_ = 0;
      if (!check(int(cudaMalloc(&sample_ws_, need)))) return;
      sample_ws_bytes_ = need;
    }
    const cu::SampleArgs a{s.temperature, s.top_k, s.top_p, s.min_p};
    check(cu::sample(tokens, logits, n, a, draw_, sample_ws_, stream_, pos0));
  }

 private:
  // Records the first failure; later downloads return NaN so no result of a failed step is used.
  bool check(int err) {
    if (err && !failed_) {
      failed_ = true;
      error_ = cu::error_string(err);
    }
    return err == 0;
  }
  static void poison(void* dst, size_t bytes) {
    const float nan = std::nanf("");
    for (size_t i = 0; i + 4 <= bytes; i += 4) std::memcpy(static_cast<char*>(dst) + i, &nan, 4);
  }
  const float* bias_f32(const Weight& b) const {
    if (!b) return nullptr;
    if (b.dtype == DType::F32) return static_cast<const float*>(b.data);
    const auto it = bias_f32_.find(b.data);
    return it == bias_f32_.end() ? nullptr : it->second;
  }
  float* workspace(float*& buf, size_t& have, size_t floats);
  cu::GemmContext* gemm_for(int64_t T, int64_t cols);
  // The context for a fused projection's split GEMM (split_gemm.cu), or nullptr for the GEMV:
  // decode shapes, --no-prefill-gemm, and f16 weights (fp16's 5 exponent bits put the third
  // piece of an ordinary value in its subnormals, so the split would not be exact; not done).
  cu::GemmContext* fused_gemm(int64_t T, const Weight& w) {
    const bool ok = opt_.prefill_gemm && T >= kGemmMinTokens &&
                    (w.dtype == DType::BF16 || w.dtype == DType::F32);
    return ok ? gemm_for(T, w.cols) : nullptr;
  }

  CudaBackendOptions opt_;
  cudaStream_t stream_;
  std::string name_;
  std::vector<void*> owned_;                                // adopted weights
  std::unordered_map<const void*, const float*> bias_f32_;  // [1, n] weights widened to fp32
  cu::GemmContext* gemm_ = nullptr;
  int64_t gemm_tokens_ = 0, gemm_cols_ = 0;  // the sizes gemm_ was made for
  float* scores_ = nullptr;                  // eager attention: [T, nh, capacity]
  size_t scores_floats_ = 0;
  float* work_ = nullptr;  // flash-decoding partials
  size_t work_floats_ = 0;
  double* draw_ = nullptr;  // [1] the sampling draw sample_advance reads
  double draw_host_ = 0.0;
  void* sample_ws_ = nullptr;  // cu::sample's workspace
  size_t sample_ws_bytes_ = 0;
  bool capturing() const {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    return cudaStreamIsCapturing(stream_, &st) != cudaSuccess || st != cudaStreamCaptureStatusNone;
  }
  bool stack_layer_args(const DecoderStack& s, std::vector<cu::DecoderLayerArgs>& out) const;
  int attention_splits_for(int64_t T, int64_t capacity) const;

  std::vector<cudaGraphExec_t> graphs_;  // recorded decode steps; nullptr once dropped
  // decoder_stack: the device's grid (0: not asked yet, < 0: no cooperative launch), the layer
  // table as last uploaded and its device copy, the barrier counter and the heads' tickets.
  int stack_blocks_ = 0;
  size_t stack_max_smem_ = 0;
  std::vector<cu::DecoderLayerArgs> stack_layers_;
  void* stack_layers_dev_ = nullptr;
  unsigned* stack_sync_ = nullptr;  // [1 + stack_sync_heads_]
  int64_t stack_sync_heads_ = 0;
  int64_t stack_runs_ = 0;
  bool failed_ = false;
  std::string error_;
};

int CudaBackend::end_capture() {
  cudaGraph_t g = nullptr;
  if (!check(int(cudaStreamEndCapture(stream_, &g))) || !g) return -1;
  cudaGraphExec_t exec = nullptr;
  const bool ok = check(int(cudaGraphInstantiate(&exec, g, 0)));
  cudaGraphDestroy(g);  // the executable graph is a copy
  if (!ok) return -1;
  graphs_.push_back(exec);
  return int(graphs_.size()) - 1;
}

double CudaBackend::read_bandwidth_gbs() {
  // A device-to-device copy of 512 MiB, best of 5: bytes read + written per second.
  const size_t bytes = size_t{512} << 20;
  void *a = nullptr, *b = nullptr;
  if (!check(int(cudaMalloc(&a, bytes))) || !check(int(cudaMalloc(&b, bytes)))) {
    cudaFree(a);
    return 0.0;
  }
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  float best = INFINITY;
  for (int r = 0; r < 6; ++r) {
    cudaEventRecord(e0, stream_);
    cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream_);
    cudaEventRecord(e1, stream_);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (r > 0) best = std::min(best, ms);  // the first is a warm-up
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) / (double(best) * 1e-3) / 1e9;
}

Weight CudaBackend::adopt_weight(const Weight& host) {
  if (!host) return host;
  // The model hands over F32, F16 or BF16 weights only (dtype_is_float_supported); the module
  // has no copy of the safetensors code, so the element size is spelled out here.
  const size_t bytes = size_t(host.rows * host.cols) * (host.dtype == DType::F32 ? 4 : 2);
  void* d = nullptr;
  if (!check(int(cudaMalloc(&d, std::max<size_t>(bytes, 1))))) return Weight{};
  owned_.push_back(d);
  check(int(cudaMemcpy(d, host.data, bytes, cudaMemcpyHostToDevice)));
  if (host.rows == 1 && host.dtype != DType::F32) {  // a bias: the kernels add it in fp32
    std::vector<float> f(static_cast<size_t>(host.cols));
    const auto* src = static_cast<const uint16_t*>(host.data);
    for (size_t i = 0; i < f.size(); ++i)
      f[i] = host.dtype == DType::BF16 ? bf16_to_f32(src[i]) : f16_to_f32(src[i]);
    void* fd = nullptr;
    if (check(int(cudaMalloc(&fd, f.size() * 4)))) {
      owned_.push_back(fd);
      check(int(cudaMemcpy(fd, f.data(), f.size() * 4, cudaMemcpyHostToDevice)));
      bias_f32_[d] = static_cast<const float*>(fd);
    }
  }
  return Weight{host.dtype, d, host.rows, host.cols};
}

void CudaBackend::linear(float* out, const float* x, int64_t T, const Weight& w, const Weight& bias,
                         ActType t) {
  const bool exact_input = (t == ActType::BF16 && w.dtype == DType::BF16) ||
                           (t == ActType::F16 && w.dtype == DType::F16);
  if (opt_.prefill_gemm && T >= kGemmMinTokens && exact_input) {
    if (cu::GemmContext* g = gemm_for(T, w.cols)) {
      check(cu::gemm(g, out, x, T, dev(w), bias_f32(bias), act_of(t)));
      return;
    }
  }
  check(cu::gemv(out, x, T, dev(w), bias_f32(bias), act_of(t), stream_));
}

cu::GemmContext* CudaBackend::gemm_for(int64_t T, int64_t cols) {
  if (!gemm_ || T > gemm_tokens_ || cols > gemm_cols_) {  // a prompt shape, not a step
    cu::gemm_destroy(gemm_);
    gemm_tokens_ = std::max<int64_t>({T, gemm_tokens_, 512});
    gemm_cols_ = std::max<int64_t>({cols, gemm_cols_, 8192});
    gemm_ = cu::gemm_create(gemm_tokens_, gemm_cols_, stream_);
  }
  return gemm_;
}

void CudaBackend::qk_norm_rope(float* x, int64_t T, int64_t n_heads, int64_t head_dim,
                               const float* gain, float eps, const RopeTable& rope,
                               const int32_t* pos0, ActType t, bool fused) {
  if (fused) {
    check(cu::qk_norm_rope(x, T, n_heads, head_dim, gain, eps, rope.cos, rope.sin, pos0, act_of(t),
                           stream_));
    return;
  }
  if (gain) check(cu::rmsnorm(x, x, gain, T * n_heads, head_dim, eps, act_of(t), stream_));
  check(cu::rope(x, T, n_heads, head_dim, rope.cos, rope.sin, pos0, act_of(t), stream_));
}

void CudaBackend::qk_norm_rope_pair(const NormRopeHeads& q, const NormRopeHeads& k, int64_t T,
                                    int64_t head_dim, float eps, const RopeTable& rope,
                                    const int32_t* pos0, ActType t, bool fused) {
  if (!fused) {  // the standard path's rmsnorm + rope, per tensor
    qk_norm_rope(q.x, T, q.n_heads, head_dim, q.gain, eps, rope, pos0, t, false);
    qk_norm_rope(k.x, T, k.n_heads, head_dim, k.gain, eps, rope, pos0, t, false);
    return;
  }
  check(cu::qk_norm_rope_pair(q.x, q.n_heads, q.gain, k.x, k.n_heads, k.gain, T, head_dim, eps,
                              rope.cos, rope.sin, pos0, act_of(t), stream_));
}

void CudaBackend::kv_append(const KvLayer& kv, const float* k, const float* v, int64_t T,
                            const int32_t* pos0) {
  const int64_t kv_dim = kv.n_kv_heads * kv.head_dim;
  const bool per_channel = kv.scale_kind == KvScale::kPerChannel;
  const cu::KvView kview{kv_type(kv.storage), kv.k, kv.k_scale, per_channel};
  const cu::KvView vview{kv_type(kv.storage), kv.v, kv.v_scale, per_channel};
  check(cu::kv_calibrate(kview, k, T, kv_dim, stream_));  // no-op once calibrated (on device)
  check(cu::kv_calibrate(vview, v, T, kv_dim, stream_));
  check(cu::kv_append_pair(kview, k, vview, v, T, kv_dim, pos0, stream_));
}

void CudaBackend::qk_norm_rope_kv_append(const NormRopeHeads& q, const NormRopeHeads& k,
                                         const float* v, const KvLayer& kv, int64_t T,
                                         int64_t head_dim, float eps, const RopeTable& rope,
                                         const int32_t* pos0, ActType t, bool fused) {
  const bool plain =
      kv.storage == KvStorage::F32 || kv.storage == KvStorage::BF16 || kv.storage == KvStorage::F16;
  if (!fused || !plain) {  // the standard path, or int8/fp8 codes (calibrated on the rotated keys)
    qk_norm_rope_pair(q, k, T, head_dim, eps, rope, pos0, t, fused);
    kv_append(kv, k.x, v, T, pos0);
    return;
  }
  const cu::KvView kview{kv_type(kv.storage), kv.k, nullptr, false};
  const cu::KvView vview{kv_type(kv.storage), kv.v, nullptr, false};
  check(cu::qk_norm_rope_kv_append(q.x, q.n_heads, q.gain, k.x, k.n_heads, k.gain, v, kview, vview,
                                   T, head_dim, eps, rope.cos, rope.sin, pos0, act_of(t), stream_));
}

float* CudaBackend::workspace(float*& buf, size_t& have, size_t floats) {
  // Grows on a larger shape (the prompt), never in a decode step after it.
  if (floats > have) {
    cudaStreamSynchronize(stream_);
    cudaFree(buf);
    buf = nullptr;
    have = 0;
    if (!check(int(cudaMalloc(&buf, floats * sizeof(float))))) return nullptr;
    have = floats;
  }
  return buf;
}

void CudaBackend::attention(float* out, const float* q, const KvLayer& kv, const int32_t* pos0,
                            const AttentionParams& p) {
  const bool per_channel = kv.scale_kind == KvScale::kPerChannel;
  const cu::KvView kview{kv_type(kv.storage), kv.k, kv.k_scale, per_channel};
  const cu::KvView vview{kv_type(kv.storage), kv.v, kv.v_scale, per_channel};
  const cu::AttnShape s{p.T, p.n_heads, p.n_kv_heads, p.head_dim, kv.capacity, p.scale};
  if (!p.online) {
    float* sc = workspace(scores_, scores_floats_, size_t(p.T * p.n_heads * kv.capacity));
    if (sc) check(cu::attention_eager(out, q, kview, vview, pos0, s, act_of(p.act), sc, stream_));
    return;
  }
  // A split is one block per head walking its keys a warp per key, each key two dependent memory
  // round trips. 0.6B-shaped decode (16 heads, capacity 384), ncu on the H200, split + reduce a
  // layer: capacity / 32 (12 splits, 8 keys a warp) 17.8 + 5.0 us; / 16 (24 splits) 9.0 + 7.4 us;
  // / 8 (48 splits) 7.0 + 12.6 us, the reduce's serial walk over the splits eating the gain. A
  // decode step (T == 1) takes one split per kDecodeKeysPerSplit rows of capacity, up to 64 (the
  // tests sweep 1-64); a prompt (T > 1) already has T times the blocks and keeps capacity / 32, up
  // to 16. Each split takes ceil(n_ctx / splits) keys, read from the device position.
  // The workspace is sized for the larger of this call and a decode step, so a decode step after
  // a short prompt never grows it (a growth synchronises, which a graph capture cannot).
  const auto pick = [&](int64_t T) { return attention_splits_for(T, kv.capacity); };
  const int splits = pick(p.T);
  cu::AttnShape step = s;
  step.T = 1;
  const int64_t need = std::max(cu::attention_flash_work_floats(s, splits),
                                cu::attention_flash_work_floats(step, pick(1)));
  float* w = workspace(work_, work_floats_, size_t(need));
  if (w)
    check(cu::attention_flash(out, q, kview, vview, pos0, s, act_of(p.act), p.fp16_accumulation,
                              splits, w, stream_));
}

int CudaBackend::attention_splits_for(int64_t T, int64_t capacity) const {
  const int64_t per_split = T == 1 ? kDecodeKeysPerSplit : 32, max_splits = T == 1 ? 64 : 16;
  return opt_.attention_splits > 0 ? opt_.attention_splits
                                   : int(std::clamp<int64_t>(capacity / per_split, 1, max_splits));
}

// The device's view of each layer, or false when a layer is outside what the persistent kernel
// runs (weights of another type than layer 0's q, a cache with scales or another capacity, a
// bias the backend holds no fp32 copy of).
bool CudaBackend::stack_layer_args(const DecoderStack& s,
                                   std::vector<cu::DecoderLayerArgs>& out) const {
  out.resize(size_t(s.n_layers));
  const DType dt = s.layers[0].qkv->q.dtype;
  const int64_t capacity = s.layers[0].kv->capacity;
  for (int64_t l = 0; l < s.n_layers; ++l) {
    const StackLayer& L = s.layers[l];
    for (const Weight* w : {&L.qkv->q, &L.qkv->k, &L.qkv->v, L.o_proj, L.gate, L.up, L.down})
      if (w->dtype != dt) return false;
    const KvLayer& kv = *L.kv;
    if ((kv.storage != KvStorage::F32 && kv.storage != KvStorage::BF16 &&
         kv.storage != KvStorage::F16) ||
        kv.capacity != capacity)
      return false;
    cu::DecoderLayerArgs& d = out[size_t(l)];
    std::memset(static_cast<void*>(&d), 0,
                sizeof d);  // padding too: the table is compared byte for byte
    d.wq = L.qkv->q.data, d.wk = L.qkv->k.data, d.wv = L.qkv->v.data, d.wo = L.o_proj->data;
    d.wg = L.gate->data, d.wu = L.up->data, d.wd = L.down->data;
    d.bq = bias_f32(L.qkv->bq), d.bk = bias_f32(L.qkv->bk), d.bv = bias_f32(L.qkv->bv);
    if ((L.qkv->bq && !d.bq) || (L.qkv->bk && !d.bk) || (L.qkv->bv && !d.bv)) return false;
    d.in_norm = L.input_norm, d.post_norm = L.post_norm, d.q_norm = L.q_norm, d.k_norm = L.k_norm;
    d.kc = {kv_type(kv.storage), kv.k, nullptr, false};
    d.vc = {kv_type(kv.storage), kv.v, nullptr, false};
  }
  return true;
}

bool CudaBackend::decoder_stack(const DecoderStack& s) {
  if (!opt_.persistent_decode || failed_ || s.n_layers <= 0) return false;
  const DType dt = s.layers[0].qkv->q.dtype;
  if (dt != DType::BF16 && dt != DType::F16) return false;
  std::vector<cu::DecoderLayerArgs> layers;
  if (!stack_layer_args(s, layers)) return false;
  if (stack_blocks_ == 0 && cu::decoder_blocks(&stack_blocks_, &stack_max_smem_) != 0)
    stack_blocks_ = -1;  // no cooperative launch here: the ops run one launch each
  if (stack_blocks_ < 0) return false;
  cu::DecoderArgs a;
  a.n_layers = int(s.n_layers), a.dim = int(s.dim), a.ffn = int(s.ffn);
  a.q_heads = int(s.n_heads), a.kv_heads = int(s.n_kv_heads), a.head_dim = int(s.head_dim);
  a.q_rows = a.q_heads * a.head_dim, a.kv_dim = a.kv_heads * a.head_dim;
  a.splits = attention_splits_for(1, s.layers[0].kv->capacity);
  a.eps = s.eps, a.scale = 1.0f / std::sqrt(float(s.head_dim)), a.act = act_of(s.act);
  a.cos_tab = s.rope.cos, a.sin_tab = s.rope.sin, a.pos = s.pos0;
  a.diag = cu::kDecoderEngineSchedule;
  a.hidden = s.hidden, a.sum = s.sum, a.normed = s.normed, a.q = s.q, a.k = s.k, a.v = s.v;
  a.attn = s.attn, a.attn_out = s.attn_out, a.mlp_act = s.mlp_act, a.mlp_out = s.mlp_out;
  const cu::WType wt = wtype_of(dt);
  if (cu::decoder_plan(a, wt, stack_blocks_, stack_max_smem_) != 0) return false;
  // Buffers grow in the eager first step; a recording that would need them to grow (never in the
  // model's order of calls) runs the ops instead.
  const size_t work = size_t(
      cu::attention_flash_work_floats({1, s.n_heads, s.n_kv_heads, s.head_dim, 0, 1.0f}, a.splits));
  const bool table_same = layers.size() == stack_layers_.size() &&
                          std::memcmp(layers.data(), stack_layers_.data(),
                                      layers.size() * sizeof(cu::DecoderLayerArgs)) == 0;
  const bool grow = work > work_floats_ || s.n_heads > stack_sync_heads_ || !table_same;
  if (grow && capturing()) return false;
  a.work = workspace(work_, work_floats_, work);
  if (s.n_heads > stack_sync_heads_) {
    cudaFree(stack_sync_);
    stack_sync_ = nullptr, stack_sync_heads_ = 0;
    const size_t bytes = size_t(1 + s.n_heads) * sizeof(unsigned);
    if (!check(int(cudaMalloc(&stack_sync_, bytes))) ||
        !check(int(cudaMemset(stack_sync_, 0, bytes))))
      return true;  // failed: status() says why, downloads are poisoned
    stack_sync_heads_ = s.n_heads;
  }
  if (!table_same) {
    cudaStreamSynchronize(stream_);  // a queued step may still read the old table
    cudaFree(stack_layers_dev_);
    stack_layers_dev_ = nullptr, stack_layers_.clear();
    const size_t bytes = layers.size() * sizeof(cu::DecoderLayerArgs);
    if (!check(int(cudaMalloc(&stack_layers_dev_, bytes))) ||
        !check(int(cudaMemcpy(stack_layers_dev_, layers.data(), bytes, cudaMemcpyHostToDevice))))
      return true;
    stack_layers_ = std::move(layers);
  }
  if (!a.work) return true;
  a.layers = static_cast<const cu::DecoderLayerArgs*>(stack_layers_dev_);
  a.barrier = stack_sync_, a.head_tickets = stack_sync_ + 1;
  check(cu::decoder_layers(a, wt, stream_));
  ++stack_runs_;
  return true;
}

}  // namespace

std::shared_ptr<Backend> make_cuda_backend(const CudaBackendOptions& o, std::string* error) {
  if (cu::device_count() <= o.device) {
    if (error) *error = "no CUDA GPU present";
    return nullptr;
  }
  cudaDeviceProp prop{};
  cudaStream_t st = nullptr;
  cudaError_t e = cudaSetDevice(o.device);
  if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, o.device);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    if (error) *error = std::string("CUDA: ") + cudaGetErrorString(e);
    return nullptr;
  }
  return std::make_shared<CudaBackend>(o, st, prop.name);
}

}  // namespace fusecheck
