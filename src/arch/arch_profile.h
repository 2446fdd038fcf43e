// Architecture profiles as data (data/architectures.json): which tensors are norms, how a stored
// weight becomes an effective gain, and how q/k norms are scoped. No code branches on architecture.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "util/result.h"

namespace fusecheck {

enum class GainConvention { kW, kOnePlusW };                   // gain = w, or Gemma's gain = 1 + w
enum class QkNormScope { kNone, kPerHead, kWholeProjection };  // OLMo2: whole projection
enum class NormKind { kBlock, kQ, kK, kFinal };                // q/k norms shape attention logits
enum class NormSize { kHidden, kHeadDim, kQProj, kKvProj };

struct NormSpec {
  std::string role;    // "k_norm"
  std::string tensor;  // "layers.{layer}.self_attn.k_norm.weight" (relative to the prefix)
  NormKind kind = NormKind::kBlock;
  NormSize size = NormSize::kHidden;
  bool per_layer() const { return tensor.find("{layer}") != std::string::npos; }
  std::string tensor_name(const std::string& prefix, int64_t layer) const;
  int64_t expected_size(const ModelConfig& c) const;
};

// The tensors the inference engine loads, by role, relative to the tensor prefix ({layer} = index).
// An empty name means the architecture has no such tensor. Biases are optional even when named
// (Qwen2 has them, Llama does not); q_norm/k_norm are required when named.
struct DecoderTensors {
  std::string embed_tokens, final_norm;
  std::vector<std::string> lm_head;  // full names to try; none found -> tied to embed_tokens
  std::string input_norm, q_proj, k_proj, v_proj, q_bias, k_bias, v_bias, q_norm, k_norm, o_proj;
  std::string post_attention_norm, gate_proj, up_proj, down_proj;
};

struct ArchProfile {
  std::string name;
  std::vector<std::string> model_types;
  GainConvention convention = GainConvention::kW;
  QkNormScope qk_scope = QkNormScope::kNone;
  std::vector<std::string> tensor_prefixes;
  std::vector<NormSpec> norms;
  bool has_decoder = false;  // the engine can run it
  DecoderTensors decoder;
};

// "layers.{layer}.x" -> prefix + "layers.3.x".
std::string layer_tensor_name(const std::string& prefix, const std::string& tmpl, int64_t layer);

class ArchRegistry {
 public:
  // Parses a profiles document; `source` names it in errors.
  static Result<ArchRegistry> parse(std::string_view json_text, const std::string& source);
  // The built-in data/architectures.json, or `file` when non-empty.
  static Result<ArchRegistry> load(const std::string& file);

  // Error lists the known model types when `model_type` has no profile.
  Result<const ArchProfile*> find(const std::string& model_type,
                                  const std::string& config_path) const;
  const std::vector<ArchProfile>& profiles() const { return profiles_; }

 private:
  std::vector<ArchProfile> profiles_;
};

std::string_view norm_kind_name(NormKind k);
std::string_view gain_convention_name(GainConvention c);

}  // namespace fusecheck
