// config.json -> ModelConfig, for the decoder-only families fusecheck knows (the architecture
// profiles in data/architectures.json name them). Handles both RoPE spellings: the Hub's top-level
// rope_theta/rope_scaling and transformers 5's rope_parameters, and configs nested in text_config.
#pragma once

#include <cstdint>
#include <string>

#include "util/result.h"

namespace fusecheck {

struct RopeConfig {
  double theta = 10000.0;
  std::string type = "default";  // "default", "llama3", ... (validated by the engine, not here)
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;
};

struct ModelConfig {
  std::string model_type;    // e.g. "qwen3"
  std::string architecture;  // architectures[0], e.g. "Qwen3ForCausalLM" (may be empty)
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // explicit in Qwen3 (head_dim*heads != hidden), else hidden/heads
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  RopeConfig rope;
  // Mixture of experts (0 when dense).
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  std::string torch_dtype;  // as declared ("bfloat16", ...); informational
  // Settings the engine does not implement, kept so it can refuse them (validate_engine_config);
  // the static check reads none of them.
  int64_t sliding_window = 0;      // attention window in tokens; 0 = none (null or absent)
  int64_t sliding_layers = 0;      // layers that transformers runs with the window (see .cpp)
  std::string unknown_layer_type;  // a layer_types entry that is neither full nor sliding
  std::string hidden_act = "silu";
  bool mlp_bias = false;
  double partial_rotary_factor = 1.0;
  int64_t num_local_experts = 0;  // Mixtral's spelling of num_experts
};

// `path` names the file in errors.
Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& path);

}  // namespace fusecheck
