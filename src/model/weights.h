// The engine's view of a checkpoint: every weight used in place from the memory map (bf16, f16 or
// f32; no fp32 copy of the matrices), located through the architecture's decoder tensor table
// (data/architectures.json) and checked against config.json's shapes before any is used.
#pragma once

#include <string>
#include <vector>

#include "arch/arch_profile.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "kernels/types.h"
#include "util/result.h"

namespace fusecheck {

// Shape names used below: dim = hidden_size, hd = head_dim, nh = num_heads, nkv = num_kv_heads,
// ffn = intermediate_size, vocab = vocab_size.
struct LayerWeights {
  std::vector<float> input_norm;           // [dim] fp32 copy of the gain (exactly representable)
  Weight q_proj;                           // [nh*hd, dim]
  Weight k_proj;                           // [nkv*hd, dim]
  Weight v_proj;                           // [nkv*hd, dim]
  Weight q_bias, k_bias, v_bias;           // [1, nh*hd], [1, nkv*hd], [1, nkv*hd]; Qwen2 only
  std::vector<float> q_norm, k_norm;       // [hd] per-head gains; Qwen3 only (else empty)
  Weight o_proj;                           // [dim, nh*hd]
  std::vector<float> post_attention_norm;  // [dim]
  Weight gate_proj, up_proj;               // [ffn, dim]
  Weight down_proj;                        // [dim, ffn]
};

struct ModelWeights {
  DType dtype = DType::F32;  // the projections' dtype: the model dtype of the standard path
  Weight embed_tokens;       // [vocab, dim]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // [dim]
  Weight lm_head;                 // [vocab, dim]; the embedding matrix when tied
  bool tied = false;
};

// Checks that the config describes a model the engine runs (dense, RoPE type known, shapes
// consistent); `path` is config.json for messages.
Status validate_engine_config(const ModelConfig& c, const std::string& path);

// Locates and validates every tensor. Errors name the shard file, the tensor, and what was
// expected.
Result<ModelWeights> load_weights(const Checkpoint& ckpt, const ModelConfig& c,
                                  const ArchProfile& arch);

}  // namespace fusecheck
