#include "io/model_config.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace fusecheck {

namespace {

using json = nlohmann::json;

// Reads config fields with type and range checks; errors name the file and the key.
class Reader {
 public:
  Reader(const json& j, const std::string& path) : j_(j), path_(path) {}

  Status get_int(const char* key, int64_t& out, int64_t lo, int64_t hi, bool required) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (required) return make_error("{}: missing \"{}\"", path_, key);
      return ok_status();
    }
    // 1e9 parses as a float; accept integral floats, reject fractions and other types.
    double v;
    if (it->is_number_integer()) {
      v = double(it->get<int64_t>());
    } else if (it->is_number_float() && std::trunc(it->get<double>()) == it->get<double>()) {
      v = it->get<double>();
    } else {
      return make_error("{}: \"{}\" must be an integer, found {}", path_, key, it->dump());
    }
    if (v < double(lo) || v > double(hi))
      return make_error("{}: \"{}\" = {} is outside the plausible range [{}, {}]", path_, key,
                        it->dump(), lo, hi);
    out = int64_t(v);
    return ok_status();
  }

  Status get_double(const json& obj, const char* key, double& out, double lo, double hi) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return ok_status();
    if (!it->is_number())
      return make_error("{}: \"{}\" must be a number, found {}", path_, key, it->dump());
    double v = it->get<double>();
    if (!(v >= lo && v <= hi))
      return make_error("{}: \"{}\" = {} is outside [{}, {}]", path_, key, v, lo, hi);
    out = v;
    return ok_status();
  }

  Status get_bool(const char* key, bool& out) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return ok_status();
    if (!it->is_boolean())
      return make_error("{}: \"{}\" must be true or false, found {}", path_, key, it->dump());
    out = it->get<bool>();
    return ok_status();
  }

  Status get_string(const json& obj, const char* key, std::string& out) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return ok_status();
    if (!it->is_string())
      return make_error("{}: \"{}\" must be a string, found {}", path_, key, it->dump());
    out = it->get<std::string>();
    return ok_status();
  }

 private:
  const json& j_;
  const std::string& path_;
};

Status parse_rope_block(Reader& r, const json& block, RopeConfig& rope, const std::string& path) {
  if (!block.is_object()) return make_error("{}: RoPE settings must be an object", path);
  FC_TRY(r.get_double(block, "rope_theta", rope.theta, 1.0, 1e12));
  // The Hub spells the type "type" in older configs, "rope_type" in newer ones.
  FC_TRY(r.get_string(block, "type", rope.type));
  FC_TRY(r.get_string(block, "rope_type", rope.type));
  FC_TRY(r.get_double(block, "factor", rope.factor, 1e-6, 1e6));
  FC_TRY(r.get_double(block, "low_freq_factor", rope.low_freq_factor, 1e-6, 1e6));
  FC_TRY(r.get_double(block, "high_freq_factor", rope.high_freq_factor, 1e-6, 1e6));
  double orig = double(rope.original_max_position_embeddings);
  FC_TRY(r.get_double(block, "original_max_position_embeddings", orig, 0, 1e9));
  rope.original_max_position_embeddings = int64_t(orig);
  return ok_status();
}

// transformers' defaults for the sliding-window keys a config may leave out, by model_type (the
// configuration classes' constructor defaults). Types not listed have no sliding window.
struct WindowDefaults {
  const char* model_type;
  bool gated;  // the window is off unless use_sliding_window is true (Qwen2/Qwen3 style)
  int64_t sliding_window;
  int64_t max_window_layers;
};
constexpr WindowDefaults kWindowDefaults[] = {
    {"mistral", false, 4096, 0},
    {"qwen2", true, 4096, 28},
    {"qwen3", true, 4096, 28},
    {"qwen3_moe", true, 4096, 28},
};

// Which layers transformers runs with a sliding window, and how wide it is. Mistral windows every
// layer when sliding_window is not null. Qwen2/Qwen3 ignore sliding_window unless
// use_sliding_window is true; then the layers marked "sliding_attention" in layer_types (or, when
// layer_types is absent, those at or above max_window_layers) use it.
Status parse_sliding_window(Reader& r, const nlohmann::json& j, int64_t& cfg_layers, ModelConfig& c,
                            const std::string& path) {
  const WindowDefaults* d = nullptr;
  for (const auto& e : kWindowDefaults)
    if (c.model_type == e.model_type) d = &e;
  if (!d) return ok_status();
  bool use = !d->gated;
  FC_TRY(r.get_bool("use_sliding_window", use));
  if (!use) return ok_status();
  int64_t window = d->sliding_window;
  auto sw = j.find("sliding_window");
  if (sw != j.end() && sw->is_null()) return ok_status();  // null: no window
  FC_TRY(r.get_int("sliding_window", window, 1, int64_t(1) << 40, false));
  int64_t max_window_layers = d->max_window_layers;
  FC_TRY(r.get_int("max_window_layers", max_window_layers, 0, 1 << 20, false));
  c.sliding_window = window;
  c.sliding_layers = d->gated ? std::max<int64_t>(0, cfg_layers - max_window_layers) : cfg_layers;
  auto lt = j.find("layer_types");
  if (d->gated && lt != j.end() && !lt->is_null()) {
    if (!lt->is_array()) return make_error("{}: \"layer_types\" must be a list", path);
    c.sliding_layers = 0;
    for (const auto& t : *lt) {
      std::string name = t.is_string() ? t.get<std::string>() : t.dump();
      if (name == "sliding_attention")
        ++c.sliding_layers;
      else if (name != "full_attention" && c.unknown_layer_type.empty())
        c.unknown_layer_type = name;
    }
  }
  return ok_status();
}

// Fields that change the computation in ways the engine does not implement; read so it can refuse.
Status parse_engine_fields(Reader& r, const nlohmann::json& j, ModelConfig& c,
                           const std::string& path) {
  FC_TRY(r.get_string(j, "hidden_act", c.hidden_act));
  FC_TRY(r.get_bool("mlp_bias", c.mlp_bias));
  FC_TRY(r.get_double(j, "partial_rotary_factor", c.partial_rotary_factor, 0.0, 1.0));
  FC_TRY(r.get_int("num_local_experts", c.num_local_experts, 0, 1 << 16, false));
  return parse_sliding_window(r, j, c.num_layers, c, path);
}

}  // namespace

Result<ModelConfig> parse_model_config(const std::string& text, const std::string& path) {
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded())
    return make_error("{}: not valid JSON (check for a truncated download)", path);
  if (!root.is_object()) return make_error("{}: expected a JSON object", path);

  ModelConfig c;
  {
    Reader top(root, path);
    FC_TRY(top.get_string(root, "model_type", c.model_type));
    auto a = root.find("architectures");
    if (a != root.end() && a->is_array() && !a->empty() && (*a)[0].is_string())
      c.architecture = (*a)[0].get<std::string>();
  }
  // Multimodal wrappers (Gemma 3, Qwen-VL style) keep the language model's settings in text_config.
  const json* jp = &root;
  auto tc = root.find("text_config");
  if (tc != root.end() && tc->is_object()) {
    jp = &*tc;
    std::string inner;
    Reader r(*jp, path);
    FC_TRY(r.get_string(*jp, "model_type", inner));
    if (!inner.empty()) c.model_type = inner;
  }
  const json& j = *jp;
  if (c.model_type.empty())
    return make_error("{}: missing \"model_type\"; cannot tell the architecture", path);

  Reader r(j, path);
  constexpr int64_t kBig = int64_t(1) << 20;
  FC_TRY(r.get_int("hidden_size", c.hidden_size, 1, kBig, true));
  FC_TRY(r.get_int("num_hidden_layers", c.num_layers, 1, 10000, true));
  FC_TRY(r.get_int("num_attention_heads", c.num_heads, 1, 65536, true));
  c.num_kv_heads = c.num_heads;
  FC_TRY(r.get_int("num_key_value_heads", c.num_kv_heads, 1, 65536, false));
  c.head_dim = 0;
  FC_TRY(r.get_int("head_dim", c.head_dim, 1, 65536, false));
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_heads != 0)
      return make_error(
          "{}: hidden_size {} is not divisible by num_attention_heads {} and no "
          "head_dim is given",
          path, c.hidden_size, c.num_heads);
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.num_heads % c.num_kv_heads != 0)
    return make_error("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}",
                      path, c.num_heads, c.num_kv_heads);
  if (c.head_dim % 2 != 0)
    return make_error("{}: head_dim {} is odd; RoPE rotates channel pairs", path, c.head_dim);
  FC_TRY(r.get_int("intermediate_size", c.intermediate_size, 1, kBig, false));
  FC_TRY(r.get_int("vocab_size", c.vocab_size, 1, int64_t(1) << 24, false));
  FC_TRY(
      r.get_int("max_position_embeddings", c.max_position_embeddings, 1, int64_t(1) << 30, false));
  FC_TRY(r.get_double(j, "rms_norm_eps", c.rms_norm_eps, 0.0, 1.0));
  FC_TRY(r.get_bool("tie_word_embeddings", c.tie_word_embeddings));
  FC_TRY(r.get_bool("attention_bias", c.attention_bias));
  FC_TRY(r.get_int("num_experts", c.num_experts, 0, 1 << 16, false));
  FC_TRY(r.get_int("num_experts_per_tok", c.num_experts_per_tok, 0, 1 << 16, false));
  FC_TRY(r.get_int("moe_intermediate_size", c.moe_intermediate_size, 0, kBig, false));
  FC_TRY(r.get_string(root, "torch_dtype", c.torch_dtype));
  FC_TRY(r.get_string(root, "dtype", c.torch_dtype));

  // RoPE: transformers 5 writes rope_parameters (possibly keyed by layer type, as in Gemma 3); the
  // Hub's older form is top-level rope_theta plus an optional rope_scaling block.
  FC_TRY(r.get_double(j, "rope_theta", c.rope.theta, 1.0, 1e12));
  auto rs = j.find("rope_scaling");
  if (rs != j.end() && !rs->is_null()) FC_TRY(parse_rope_block(r, *rs, c.rope, path));
  auto rp = j.find("rope_parameters");
  if (rp != j.end() && !rp->is_null()) {
    const json* block = &*rp;
    if (rp->is_object() && rp->contains("full_attention")) block = &(*rp)["full_attention"];
    FC_TRY(parse_rope_block(r, *block, c.rope, path));
  }
  FC_TRY(parse_engine_fields(r, j, c, path));
  return c;
}

}  // namespace fusecheck
