// The decoder-only transformer (Qwen3, Qwen2, Llama family), configured from config.json and the
// architecture's decoder tensor table, run through the backend seam (kernels/backend.h): a forward
// pass is a sequence of batched backend ops, one call per op per layer for all T tokens, and the
// KernelPlan is interpreted in one place (layer_forward). forward() follows transformers' modeling
// code step by step.
//
// Numerics paths (docs/NUMERICS.md lists every rounding point):
//   Precision::kModel  the model dtype: with the standard plan, ops round where PyTorch eager
//                      does; a fused plan (KernelPlan) moves rounding points as fused kernels do.
//   Precision::kFp32   the fp32 reference: no rounding, wider accumulation where it is cheap.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "arch/arch_profile.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "kernels/backend.h"
#include "kernels/kernel_plan.h"
#include "model/kv_cache.h"
#include "model/rope.h"
#include "model/sampler.h"
#include "model/weights.h"
#include "util/result.h"

namespace fusecheck {

enum class Precision { kModel, kFp32 };
Result<Precision> parse_precision(std::string_view name);  // "model" | "fp32"

struct LoadOptions {
  std::string arch_profiles;  // a data/architectures.json override; empty = built in
  int threads = 0;            // CPU backend threads (0: the physical cores)
  // Where the ops run: "cpu" or "cuda" (the CUDA backend on GPU 0; an error when the build has
  // no CUDA backend or no GPU is present). Chosen once here; nothing else picks a backend.
  std::string device = "cpu";
  // libfusecheck_cuda.so for device "cuda"; empty: beside the binary, then the library search
  // path (kernels/backend_loader.h).
  std::string cuda_module;
  // "cuda": a fully fused decode step's layers as one persistent launch (CudaBackendOptions,
  // --persistent-decode); false: one launch per op.
  bool persistent_decode = false;
};
Result<std::string> parse_device(std::string_view name);  // "cpu" | "cuda"

// A forward pass's buffers in backend memory, reused across calls: decode allocates nothing once
// it has grown. Opaque outside the model.
class Activations {
 public:
  Activations() = default;

 private:
  friend class Model;
  int64_t T = 0, t_cap = 0, ctx_cap = 0, logits_cap = 0;
  Buffer hidden, normed, sum;       // [T, dim]  the residual stream; a norm's output; fp32 sum
  Buffer xn;                        // [T, dim]  rmsnorm_qkv's fp32 normalised input
  Buffer q, k, v;                   // [T, nh*hd], [T, nkv*hd], [T, nkv*hd]
  Buffer attn;                      // [T, nh*hd] attention output before o_proj
  Buffer attn_out, mlp_out, resid;  // [T, dim]  o_proj, down_proj outputs; a residual copy
  Buffer gate, up, mlp_act;         // [T, ffn]
  Buffer logits;                    // [logits_cap, vocab]: the rows a call asks for
  Buffer tokens;                    // [T] int32
  Buffer pos0;                      // [1] int32: the first position of the call
  Buffer rope_cos, rope_sin;        // [ctx_cap, hd/2] fp32
  // True when the last layer's mlp_out has not been added into `hidden` yet: a fused plan adds it
  // in the next layer's add_rmsnorm (or the final norm's).
  bool pending_mlp = false;
  // True when the last layer's down_proj already did the next layer's residual add (hidden =
  // round(s), sum = s, linear_add_residual): that layer fuses add_rmsnorm and rmsnorm_qkv, whose
  // norm reads only the fp32 sum, so its add_rmsnorm has nothing left to do.
  bool sum_ready = false;
  uint64_t epoch = 0;  // bumped whenever a buffer above moves: a recorded decode graph is stale
  // What tokens[0] and pos0[0] hold after a greedy decode step (-1: what forward uploaded).
  int32_t dev_token = -1;
  int64_t dev_pos = -1;
};

// A decode step recorded as a backend graph (Model::decode_greedy) and what it was recorded for.
// Drops its graph when it goes or is reset. Move-only.
class DecodeGraph {
 public:
  DecodeGraph() = default;
  ~DecodeGraph() { reset(); }
  DecodeGraph(DecodeGraph&& o) noexcept { *this = std::move(o); }
  DecodeGraph& operator=(DecodeGraph&& o) noexcept;
  DecodeGraph(const DecodeGraph&) = delete;
  DecodeGraph& operator=(const DecodeGraph&) = delete;
  void reset();  // drops the graph: the next step runs eagerly, the one after records
  bool recorded() const { return id_ >= 0; }

 private:
  friend class Model;
  std::shared_ptr<Backend> backend_;
  int id_ = -1;
  bool warm_ = false;  // one eager step ran with these buffers (workspaces sized): may record
  int64_t capacity_ = -1;
  uint64_t epoch_ = 0;
  SamplingParams mode_;  // greedy or the sampling parameters the graph was recorded with
};

// Hidden states numbered as transformers numbers them: hidden[0] is the embedding output,
// hidden[l + 1] the output of layer l, and the last one has the final norm applied.
// layer_out[l] is the output of layer l before any final norm (= hidden[l + 1] but for the last).
struct ForwardTrace {
  std::vector<std::vector<float>> hidden;     // [n_layers + 1][T * dim]
  std::vector<std::vector<float>> layer_out;  // [n_layers][T * dim]
};

enum class LogitsFor { kLast, kAll };

class Model {
 public:
  static Result<Model> load(const std::string& dir, const LoadOptions& opt = {});

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const std::string& dir() const { return ckpt_.dir(); }
  const Checkpoint& checkpoint() const { return ckpt_; }  // the open files, for the load-time check
  ActType act_type(Precision p) const;
  // Bytes of the weights as stored (what the memory map makes resident).
  int64_t weight_bytes() const;
  // The backend every op runs on. Results do not depend on its thread count.
  Backend& backend() const { return *backend_; }
  // The device the model was loaded for ("cpu" or "cuda"): part of every cached measurement's key.
  const std::string& device() const { return device_; }

  // A cache for `precision` and the plan's KV format, bounded by max_context (<= 0: the model's
  // max_position_embeddings).
  KvCache new_cache(Precision p, int64_t max_context, const KernelPlan* plan = nullptr) const;
  KernelPlan standard_plan() const { return KernelPlan::standard(config_.num_layers); }

  // Runs `tokens` at positions cache.size() .. + T, appending their keys and values to the cache.
  // logits: [1 or T, vocab] (fp32 holding model-dtype values on the standard path). plan: the
  // kernels (nullptr = standard). ws: a workspace reused across calls; nullptr = a fresh one.
  Status forward(std::span<const int32_t> tokens, Precision p, KvCache& cache, LogitsFor which,
                 std::vector<float>& logits, ForwardTrace* trace = nullptr,
                 const KernelPlan* plan = nullptr, Activations* ws = nullptr) const;

  // One greedy decode step on a backend with graphs (Backend::supports_graphs): runs `token` at
  // position cache.size() and sets *next to the argmax of its logits, chosen on the device. The
  // step is recorded once into g and replayed: no upload when the device already holds token and
  // position (the previous step left them there), one 4-byte download. The same tokens as
  // forward() + argmax: every op is the one forward runs. Logits stay on the device
  // (read_logits).
  Status decode_greedy(int32_t token, Precision p, KvCache& cache, const KernelPlan& plan,
                       Activations& ws, DecodeGraph& g, int32_t* next) const;
  // decode_greedy with the Sampler's choice for params s and the uniform draw u in [0, 1)
  // (Sampler::draw), made on the device (Backend::supports_device_sampling): the step, sampling
  // included, is recorded and replayed; the draw is the one value uploaded per step. Greedy s:
  // decode_greedy (u unused).
  Status decode_step(int32_t token, Precision p, KvCache& cache, const KernelPlan& plan,
                     Activations& ws, DecodeGraph& g, const SamplingParams& s, double u,
                     int32_t* next) const;
  // The last step's logits row from ws: [vocab].
  void read_logits(const Activations& ws, std::vector<float>& logits) const;

  // One decoder layer alone (the probe's shadow mode): `in` ([T, dim], rounded here to the path's
  // activation type, the best input that path could store) at positions cache.size() .. + T;
  // out: [T, dim], the layer's output residual stream (any deferred residual add included). The
  // layer's keys and values go into the cache; its size does not change.
  Status run_layer(int64_t layer, const std::vector<float>& in, std::vector<float>& out,
                   Precision p, KvCache& cache, const KernelPlan& plan, Activations& ws) const;

 private:
  // Backend copies of one layer's weights (the map itself on the CPU).
  struct LayerParams {
    Buffer input_norm, post_attention_norm;  // [dim]
    Buffer q_norm, k_norm;                   // [hd]; empty without q/k norm
    QkvWeights qkv;
    Weight o_proj, gate_proj, up_proj, down_proj;
  };

  Model() = default;
  Status adopt_weights();
  // Sizes `ws` for T tokens attending over n_ctx positions and logit_rows rows of logits (grows
  // only).
  void prepare(Activations& ws, int64_t T, int64_t n_ctx, int64_t logit_rows = 1) const;
  void layer_forward(int64_t layer, Activations& ws, KvCache& cache, ActType t,
                     const KernelPlan& plan) const;
  // layer_forward's MLP block, from attn (the attention's output) to mlp_out and its residual add:
  // done, pending (the next norm fuses it) or done with its fp32 sum kept (sum_ready).
  void mlp_forward(int64_t layer, Activations& ws, ActType t, const KernelPlan& plan) const;
  // The residual stream after the last layer run (a deferred mlp_out added), into out [T, dim].
  void residual_after(Activations& ws, ActType t, std::vector<float>& out) const;
  void final_norm(Activations& ws, ActType t) const;
  // Everything a greedy T = 1 step enqueues, from ws.tokens and ws.pos0 on the device to the next
  // token and position there.
  void step_ops(Activations& ws, KvCache& cache, ActType t, const KernelPlan& plan,
                const SamplingParams& s) const;
  // A step's layers as one backend op (Backend::decoder_stack) when the plan fuses everything and
  // the backend runs it; false: the caller runs layer_forward (layer 0's add_rmsnorm may be done,
  // ws.sum_ready says so).
  bool stack_step(Activations& ws, KvCache& cache, ActType t, const KernelPlan& plan) const;
  void download(const Buffer& b, int64_t n, std::vector<float>& out) const;

  Checkpoint ckpt_;
  ModelConfig config_;
  ModelWeights weights_;
  Rope rope_;
  std::shared_ptr<Backend> backend_;
  std::string device_ = "cpu";
  std::vector<LayerParams> layers_;
  Weight embed_, lm_head_;
  Buffer final_norm_;  // [dim]
};

}  // namespace fusecheck
