#include "model/weights.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace fusecheck {

namespace {

// Settings the engine would otherwise ignore, where ignoring them changes the outputs.
Status refuse_unimplemented(const ModelConfig& c, const std::string& path) {
  const int64_t experts = std::max(c.num_experts, c.num_local_experts);
  if (experts > 0)
    return make_error(
        "{}: mixture-of-experts models ({} experts) are checked but not run by the engine; "
        "hint: `fusecheck check` works on this model",
        path, experts);
  // transformers masks keys more than sliding_window positions back; that changes the outputs
  // only once a sequence is longer than the window, which the model's context allows.
  if (!c.unknown_layer_type.empty())
    return make_error("{}: layer_types holds \"{}\", which the engine does not run", path,
                      printable(c.unknown_layer_type));
  const int64_t context = c.max_position_embeddings > 0 ? c.max_position_embeddings : 4096;
  if (c.sliding_layers > 0 && c.sliding_window < context)
    return make_error(
        "{}: sliding_window {} applies to {} of {} layers (below max_position_embeddings {}); the "
        "engine has no sliding-window attention; hint: `fusecheck check` works on this model",
        path, c.sliding_window, c.sliding_layers, c.num_layers, context);
  if (c.hidden_act != "silu")
    return make_error("{}: hidden_act \"{}\" is not supported by the engine (expected \"silu\")",
                      path, printable(c.hidden_act));
  if (c.mlp_bias) return make_error("{}: mlp_bias is true; the engine has no MLP biases", path);
  if (c.partial_rotary_factor != 1.0)
    return make_error(
        "{}: partial_rotary_factor {} is not supported by the engine (it rotates every channel)",
        path, c.partial_rotary_factor);
  return ok_status();
}

}  // namespace

Status validate_engine_config(const ModelConfig& c, const std::string& path) {
  FC_TRY(refuse_unimplemented(c, path));
  if (c.rope.type != "default" && c.rope.type != "llama3")
    return make_error(
        "{}: rope type \"{}\" is not supported by the engine (expected \"default\" or "
        "\"llama3\")",
        path, printable(c.rope.type));
  if (c.rope.type == "llama3" &&
      (c.rope.factor <= 0 || c.rope.original_max_position_embeddings <= 0 ||
       c.rope.high_freq_factor <= c.rope.low_freq_factor))
    return make_error(
        "{}: llama3 rope scaling needs factor > 0, original_max_position_embeddings > 0 and "
        "high_freq_factor > low_freq_factor",
        path);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    return make_error("{}: head_dim must be positive and even for RoPE, found {}", path,
                      c.head_dim);
  if (c.num_heads <= 0 || c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0)
    return make_error(
        "{}: num_attention_heads ({}) must be a positive multiple of num_key_value_heads ({})",
        path, c.num_heads, c.num_kv_heads);
  if (c.hidden_size <= 0 || c.intermediate_size <= 0 || c.vocab_size <= 0 || c.num_layers <= 0)
    return make_error(
        "{}: hidden_size, intermediate_size, vocab_size and num_hidden_layers must be positive",
        path);
  if (!(c.rms_norm_eps > 0) || !(c.rope.theta > 0))
    return make_error("{}: rms_norm_eps and rope_theta must be positive", path);
  return ok_status();
}

namespace {

class Loader {
 public:
  Loader(const Checkpoint& ck, std::string prefix) : ck_(ck), prefix_(std::move(prefix)) {}

  // A matrix [rows, cols] (or a vector when rows == 0: shape [cols]). Optional tensors that are
  // absent return an empty Weight.
  Result<Weight> matrix(const std::string& name, int64_t rows, int64_t cols,
                        bool optional = false) const {
    const TensorRef* ref = ck_.find(name);
    if (!ref) {
      if (optional) return Weight{};
      return make_error(
          "{}: missing tensor {}; the checkpoint is incomplete or its config.json "
          "describes another model",
          ck_.dir(), name);
    }
    const TensorInfo& t = *ref->info;
    const std::string& file = ref->file->path();
    if (!dtype_is_float_supported(t.dtype))
      return make_error("{}: tensor {} has dtype {}, expected F32, F16 or BF16", file, name,
                        dtype_name(t.dtype));
    std::vector<uint64_t> want;
    if (rows > 0) want.push_back(static_cast<uint64_t>(rows));
    want.push_back(static_cast<uint64_t>(cols));
    if (!same_shape(t.shape, want))
      return make_error("{}: tensor {} has shape {}, expected {} from config.json", file, name,
                        shape_str(t.shape), shape_str(want));
    FC_ASSIGN(bytes, ref->file->mapped(t));
    used_.insert(name);
    return Weight{t.dtype, bytes.data(), rows > 0 ? rows : 1, cols};
  }

  // A norm gain [n] as fp32. A NaN or Inf gain would turn every activation after it into NaN.
  Result<std::vector<float>> vector(const std::string& name, int64_t n) const {
    FC_ASSIGN(w, matrix(name, 0, n));
    std::vector<float> out(static_cast<size_t>(n));
    convert_to_f32(w.dtype, w.data, out.size(), out.data());  // row 0
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(out[size_t(i)]))
        return make_error(
            "{}: tensor {} holds {} at channel {}; the engine refuses non-finite norm gains "
            "(`fusecheck check` reports them)",
            ck_.find(name)->file->path(), name, std::isnan(out[size_t(i)]) ? "NaN" : "Inf", i);
    return out;
  }

  // Every tensor of the checkpoint must be one the engine runs: an unused one means config.json
  // describes another model (fewer layers, no biases, ...) and the outputs would be silently
  // wrong. rotary_emb.inv_freq buffers (old Llama exports) are derived from rope_theta and skipped,
  // as transformers skips them.
  Status check_all_used(int64_t num_layers) const {
    size_t unused = 0;
    std::string first;
    for (const auto& f : ck_.files())
      for (const TensorInfo& t : f.tensors()) {
        if (used_.count(t.name) || t.name.ends_with(".rotary_emb.inv_freq")) continue;
        if (unused++ == 0 || t.name < first) first = t.name;
      }
    if (unused == 0) return ok_status();
    return make_error(
        "{}: tensor {}{} is not used by the engine; config.json (num_hidden_layers {}) describes "
        "another model, or the checkpoint holds weights the engine does not implement",
        ck_.dir(), first, unused > 1 ? fmt::format(" (and {} more)", unused - 1) : "", num_layers);
  }

  std::string name(const std::string& tmpl, int64_t layer) const {
    return layer_tensor_name(prefix_, tmpl, layer);
  }

 private:
  static std::string shape_str(std::span<const uint64_t> s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
  }

  const Checkpoint& ck_;
  std::string prefix_;
  mutable std::set<std::string, std::less<>> used_;  // names handed out by matrix()
};

}  // namespace

Result<ModelWeights> load_weights(const Checkpoint& ck, const ModelConfig& c,
                                  const ArchProfile& arch) {
  if (!arch.has_decoder)
    return make_error(
        "{}: architecture \"{}\" (model_type \"{}\") is checked but not run by the engine; it "
        "runs Qwen3, Qwen2 and Llama-family models",
        ck.config_path(), arch.name, printable(c.model_type));
  const DecoderTensors& d = arch.decoder;
  std::string prefix;
  for (const auto& p : arch.tensor_prefixes)
    if (ck.find(p + d.embed_tokens)) prefix = p;
  if (prefix.empty())
    return make_error("{}: missing tensor {}; not a {} checkpoint or incomplete", ck.dir(),
                      arch.tensor_prefixes.front() + d.embed_tokens, arch.name);
  Loader L(ck, prefix);

  const int64_t dim = c.hidden_size, hd = c.head_dim, ffn = c.intermediate_size;
  const int64_t q_dim = c.num_heads * hd, kv_dim = c.num_kv_heads * hd;
  ModelWeights w;
  FC_ASSIGN(embed, L.matrix(prefix + d.embed_tokens, c.vocab_size, dim));
  w.embed_tokens = embed;
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    auto N = [&](const std::string& t) { return L.name(t, l); };
    FC_ASSIGN(in_norm, L.vector(N(d.input_norm), dim));
    lw.input_norm = std::move(in_norm);
    FC_ASSIGN(q, L.matrix(N(d.q_proj), q_dim, dim));
    FC_ASSIGN(k, L.matrix(N(d.k_proj), kv_dim, dim));
    FC_ASSIGN(v, L.matrix(N(d.v_proj), kv_dim, dim));
    FC_ASSIGN(o, L.matrix(N(d.o_proj), dim, q_dim));
    lw.q_proj = q, lw.k_proj = k, lw.v_proj = v, lw.o_proj = o;
    // Biases: used when present; config.json's attention_bias makes them required.
    if (!d.q_bias.empty()) {
      const bool optional = !c.attention_bias;
      FC_ASSIGN(qb, L.matrix(N(d.q_bias), 0, q_dim, optional));
      FC_ASSIGN(kb, L.matrix(N(d.k_bias), 0, kv_dim, optional));
      FC_ASSIGN(vb, L.matrix(N(d.v_bias), 0, kv_dim, optional));
      lw.q_bias = qb, lw.k_bias = kb, lw.v_bias = vb;
    }
    if (!d.q_norm.empty()) {
      FC_ASSIGN(qn, L.vector(N(d.q_norm), hd));
      FC_ASSIGN(kn, L.vector(N(d.k_norm), hd));
      lw.q_norm = std::move(qn), lw.k_norm = std::move(kn);
    }
    FC_ASSIGN(post_norm, L.vector(N(d.post_attention_norm), dim));
    lw.post_attention_norm = std::move(post_norm);
    FC_ASSIGN(gate, L.matrix(N(d.gate_proj), ffn, dim));
    FC_ASSIGN(up, L.matrix(N(d.up_proj), ffn, dim));
    FC_ASSIGN(down, L.matrix(N(d.down_proj), dim, ffn));
    lw.gate_proj = gate, lw.up_proj = up, lw.down_proj = down;
  }
  FC_ASSIGN(final_norm, L.vector(prefix + d.final_norm, dim));
  w.final_norm = std::move(final_norm);

  w.tied = true;
  w.lm_head = w.embed_tokens;
  for (const auto& name : d.lm_head) {
    if (!ck.find(name)) continue;
    FC_ASSIGN(head, L.matrix(name, c.vocab_size, dim));
    w.lm_head = head;
    w.tied = false;
    break;
  }
  if (w.tied && !c.tie_word_embeddings)
    return make_error(
        "{}: config.json says tie_word_embeddings is false but no lm_head tensor ({}) exists",
        ck.dir(), d.lm_head.empty() ? std::string("lm_head.weight") : d.lm_head.front());
  FC_TRY(L.check_all_used(c.num_layers));
  w.dtype = w.layers.front().q_proj.dtype;
  return w;
}

}  // namespace fusecheck
