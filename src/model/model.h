// The decoder-only transformer (Qwen3, Qwen2, Llama family) on the CPU, configured from config.json
// and the architecture's decoder tensor table. forward() follows transformers' modeling code step
// by step; every intermediate is a named buffer in Activations so a numerical difference can be
// traced to its layer and op.
//
// Numerics paths (docs/NUMERICS.md lists every rounding point):
//   Precision::kModel  the model dtype: with the standard plan, ops round where PyTorch eager
//                      does; a fused plan (KernelPlan) moves rounding points as fused kernels do.
//   Precision::kFp32   the fp32 reference: no rounding, wider accumulation where it is cheap.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "arch/arch_profile.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/kernel_plan.h"
#include "model/kv_cache.h"
#include "model/rope.h"
#include "model/weights.h"
#include "util/result.h"

namespace fusecheck {

enum class Precision { kModel, kFp32 };
Result<Precision> parse_precision(std::string_view name);  // "model" | "fp32"

struct LoadOptions {
  std::string arch_profiles;  // a data/architectures.json override; empty = built in
};

// Per-call activations for T tokens. Names follow transformers' variables.
struct Activations {
  int64_t T = 0;
  std::vector<float> hidden;        // [T, dim]    the residual stream (hidden_states)
  std::vector<float> normed;        // [T, dim]    input_layernorm / post_attention_layernorm out
  std::vector<float> q, k, v;       // [T, nh*hd], [T, nkv*hd], [T, nkv*hd] after norm and RoPE
  std::vector<float> attn;          // [T, nh*hd]  attention output before o_proj
  std::vector<float> attn_out;      // [T, dim]    o_proj output
  std::vector<float> gate, up;      // [T, ffn]
  std::vector<float> mlp_act;       // [T, ffn]    silu(gate) * up
  std::vector<float> mlp_out;       // [T, dim]    down_proj output
  std::vector<float> cos, sin;      // [hd/2]
  std::vector<float> k_ctx, v_ctx;  // [n_ctx, hd] one kv head's cached keys/values in fp32
  std::vector<float> scores;        // [n_ctx]
  // Fused path only:
  std::vector<float> sum;   // [T, dim]    the unrounded residual sum (fused_add_rmsnorm)
  std::vector<float> xn;    // [T, dim]    fp32 normalised input of fused_rmsnorm_qkv
  std::vector<float> row2;  // [dim]       a second weight row (fused_gate_up_silu)
  std::vector<float> acc;   // [hd]        fused_attention's accumulator
  // True when the last layer's mlp_out has not been added into `hidden` yet: a fused plan adds it
  // in the next layer's fused_add_rmsnorm (or the final norm's).
  bool pending_mlp = false;
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
  cpu::ActType act_type(Precision p) const;
  // Bytes of the weights as stored (what the memory map makes resident).
  int64_t weight_bytes() const;
  // The threads the projections are split over (owned by the caller; nullptr: the calling thread
  // only). Results do not depend on it: every kernel follows the dot-product contract.
  void set_thread_pool(cpu::ThreadPool* pool) { pool_ = pool; }

  // A cache for `precision` and the plan's KV format, bounded by max_context (<= 0: the model's
  // max_position_embeddings).
  KvCache new_cache(Precision p, int64_t max_context, const KernelPlan* plan = nullptr) const;
  KernelPlan standard_plan() const { return KernelPlan::standard(config_.num_layers); }

  // Runs `tokens` at positions cache.size() .. + T, appending their keys and values to the cache.
  // logits: [1 or T, vocab] (fp32 holding model-dtype values on the standard path). plan: the
  // kernels (nullptr = standard).
  // ws: a workspace reused across calls (decode allocates nothing once it has grown); nullptr = a
  // fresh one.
  Status forward(std::span<const int32_t> tokens, Precision p, KvCache& cache, LogitsFor which,
                 std::vector<float>& logits, ForwardTrace* trace = nullptr,
                 const KernelPlan* plan = nullptr, Activations* ws = nullptr) const;

  // One decoder layer on a.hidden ([T, dim], positions pos0 ..), in place. Public for the probe,
  // which feeds layers reference inputs (shadow mode).
  void layer_forward(int64_t layer, Activations& a, int64_t pos0, KvCache& cache, cpu::ActType t,
                     const KernelPlan& plan) const;
  // The residual stream after the last layer: adds a pending mlp_out (fused plans) into `out`
  // without changing `a`. out: [T, dim].
  void residual_after(const Activations& a, cpu::ActType t, std::vector<float>& out) const;
  // Sizes every buffer of `a` for T tokens attending over n_ctx positions.
  void prepare(Activations& a, int64_t T, int64_t n_ctx) const;

 private:
  Model() = default;
  void attention(int64_t layer, Activations& a, int64_t pos0, const KvCache& cache, cpu::ActType t,
                 const KernelPlan& plan) const;
  void final_norm(Activations& a, cpu::ActType t, const KernelPlan& plan) const;

  Checkpoint ckpt_;
  ModelConfig config_;
  ModelWeights weights_;
  Rope rope_;
  cpu::ThreadPool* pool_ = nullptr;
};

}  // namespace fusecheck
