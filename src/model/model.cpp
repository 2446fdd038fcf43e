#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "kernels/backend_loader.h"
#include "kernels/cpu/cpu_backend.h"

namespace fusecheck {

Result<Precision> parse_precision(std::string_view name) {
  if (name == "model") return Precision::kModel;
  if (name == "fp32") return Precision::kFp32;
  return make_error("--precision: expected \"model\" or \"fp32\", found \"{}\"", printable(name));
}

Result<std::string> parse_device(std::string_view name) {
  if (name == "cpu" || name == "cuda") return std::string(name);
  return make_error("--device: expected \"cpu\" or \"cuda\", found \"{}\"", printable(name));
}

namespace {

Result<std::shared_ptr<Backend>> make_backend(const LoadOptions& o) {
  FC_ASSIGN(device, parse_device(o.device));
  if (device == "cpu") return make_cpu_backend(o.threads);
  // The CUDA libraries are mapped here, on the first --device cuda load, and never before.
  CudaBackendOptions cuda;
  cuda.persistent_decode = o.persistent_decode;
  auto b = load_cuda_backend(cuda, o.cuda_module);
  if (!b.ok()) return make_error("--device cuda: {}", b.error().message);
  return std::move(*b);
}

}  // namespace

Result<Model> Model::load(const std::string& dir, const LoadOptions& opt) {
  FC_TRY(parse_device(opt.device));  // a bad option is reported before the files are read
  Model m;
  FC_ASSIGN(ckpt, Checkpoint::open(dir));
  m.ckpt_ = std::move(ckpt);
  FC_ASSIGN(cfg, parse_model_config(m.ckpt_.config_json(), m.ckpt_.config_path()));
  m.config_ = std::move(cfg);
  FC_TRY(validate_engine_config(m.config_, m.ckpt_.config_path()));
  FC_ASSIGN(registry, ArchRegistry::load(opt.arch_profiles));
  FC_ASSIGN(arch, registry.find(m.config_.model_type, m.ckpt_.config_path()));
  FC_ASSIGN(weights, load_weights(m.ckpt_, m.config_, *arch));
  m.weights_ = std::move(weights);
  m.rope_ = Rope(m.config_.rope, m.config_.head_dim);
  FC_ASSIGN(backend, make_backend(opt));
  m.backend_ = std::move(backend);
  m.device_ = opt.device;
  FC_TRY(m.adopt_weights());
  return m;
}

Status Model::adopt_weights() {
  Backend& b = *backend_;
  const auto gain = [&](const std::vector<float>& g) {
    Buffer buf;
    if (g.empty()) return buf;
    buf = b.alloc(g.size() * sizeof(float));
    b.upload(buf, 0, g.data(), g.size() * sizeof(float));
    return buf;
  };
  for (const LayerWeights& w : weights_.layers) {
    LayerParams p;
    p.input_norm = gain(w.input_norm);
    p.post_attention_norm = gain(w.post_attention_norm);
    p.q_norm = gain(w.q_norm);
    p.k_norm = gain(w.k_norm);
    p.qkv = {b.adopt_weight(w.q_proj), b.adopt_weight(w.k_proj), b.adopt_weight(w.v_proj),
             b.adopt_weight(w.q_bias), b.adopt_weight(w.k_bias), b.adopt_weight(w.v_bias)};
    p.o_proj = b.adopt_weight(w.o_proj);
    p.gate_proj = b.adopt_weight(w.gate_proj);
    p.up_proj = b.adopt_weight(w.up_proj);
    p.down_proj = b.adopt_weight(w.down_proj);
    layers_.push_back(std::move(p));
  }
  embed_ = b.adopt_weight(weights_.embed_tokens);
  lm_head_ = b.adopt_weight(weights_.lm_head);
  final_norm_ = gain(weights_.final_norm);
  return b.status();
}

ActType Model::act_type(Precision p) const {
  if (p == Precision::kFp32) return ActType::F32;
  switch (weights_.dtype) {
    case DType::BF16:
      return ActType::BF16;
    case DType::F16:
      return ActType::F16;
    default:
      return ActType::F32;
  }
}

int64_t Model::weight_bytes() const {
  int64_t n = 0;
  for (const auto& f : ckpt_.files()) n += static_cast<int64_t>(f.file_size());
  return n;
}

KvCache Model::new_cache(Precision p, int64_t max_context, const KernelPlan* plan) const {
  if (max_context <= 0) max_context = config_.max_position_embeddings;
  if (max_context <= 0) max_context = 4096;
  // Each layer in the plan's format for it (a per-layer plan mixes them).
  const std::vector<KvLayerFormat> formats =
      plan && static_cast<int64_t>(plan->layers.size()) == config_.num_layers
          ? plan->kv_formats()
          : std::vector<KvLayerFormat>(static_cast<size_t>(config_.num_layers));
  return KvCache(backend_, config_.num_kv_heads, config_.head_dim, max_context, act_type(p),
                 formats);
}

void Model::prepare(Activations& a, int64_t T, int64_t n_ctx, int64_t logit_rows) const {
  const auto& c = config_;
  Backend& b = *backend_;
  a.T = T;
  a.pending_mlp = false, a.sum_ready = false;
  if (!a.pos0) a.pos0 = b.alloc(sizeof(int32_t)), ++a.epoch;
  if (T > a.t_cap) {
    const auto f32 = [&](int64_t per_token) {
      return b.alloc(static_cast<size_t>(T * per_token) * sizeof(float));
    };
    const int64_t dim = c.hidden_size, ffn = c.intermediate_size;
    const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
    a.hidden = f32(dim), a.normed = f32(dim), a.sum = f32(dim), a.xn = f32(dim);
    a.attn_out = f32(dim), a.mlp_out = f32(dim), a.resid = f32(dim);
    a.q = f32(q_dim), a.attn = f32(q_dim), a.k = f32(kv_dim), a.v = f32(kv_dim);
    a.gate = f32(ffn), a.up = f32(ffn), a.mlp_act = f32(ffn);
    a.tokens = b.alloc(static_cast<size_t>(T) * sizeof(int32_t));
    a.t_cap = T;
    ++a.epoch;
  }
  if (logit_rows > a.logits_cap) {  // [logit_rows, vocab]: a prefill wants only its last row's
    a.logits = b.alloc(static_cast<size_t>(logit_rows * c.vocab_size) * sizeof(float));
    a.logits_cap = logit_rows;
    ++a.epoch;
  }
  if (n_ctx > a.ctx_cap) {
    // The fp32 RoPE table grows by doubling, so decode rebuilds it O(log n) times.
    const int64_t cap = std::max(n_ctx, 2 * a.ctx_cap), half = c.head_dim / 2;
    std::vector<float> cs(static_cast<size_t>(cap * half)), sn(cs.size());
    rope_.table(0, cap, cs.data(), sn.data());
    a.rope_cos = b.alloc(cs.size() * sizeof(float));
    a.rope_sin = b.alloc(sn.size() * sizeof(float));
    b.upload(a.rope_cos, 0, cs.data(), cs.size() * sizeof(float));
    b.upload(a.rope_sin, 0, sn.data(), sn.size() * sizeof(float));
    a.ctx_cap = cap;
    ++a.epoch;
  }
}

void Model::layer_forward(int64_t layer, Activations& a, KvCache& cache, ActType t,
                          const KernelPlan& plan) const {
  const auto& c = config_;
  Backend& b = *backend_;
  const LayerParams& w = layers_[static_cast<size_t>(layer)];
  const int64_t T = a.T, dim = c.hidden_size, hd = c.head_dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const bool f_add = plan.fuses(layer, FusedGroup::kAddRmsnorm);
  const bool f_qkv = plan.fuses(layer, FusedGroup::kRmsnormQkv);
  const bool f_rope = plan.fuses(layer, FusedGroup::kQkNormRope);
  const bool f_attn = plan.fuses(layer, FusedGroup::kAttention);
  const int32_t* pos0 = a.pos0.i32();

  // --- self-attention block ---
  // normed = input_layernorm(hidden); a fused plan first adds the previous layer's pending mlp_out
  // (add_rmsnorm), and rmsnorm_qkv keeps the normalised input in fp32. With both fused, the add
  // may be done already (sum_ready: in the previous layer's down_proj), and then nothing is left
  // of add_rmsnorm: rmsnorm_qkv does not read normed.
  if ((f_add || a.pending_mlp) && !a.sum_ready)
    b.add_rmsnorm(a.hidden.f32(), a.pending_mlp ? a.mlp_out.f32() : nullptr, a.normed.f32(),
                  a.sum.f32(), w.input_norm.f32(), T, dim, eps, t);
  else if (!f_qkv)
    b.rmsnorm(a.normed.f32(), a.hidden.f32(), w.input_norm.f32(), T, dim, eps, t);
  a.pending_mlp = false, a.sum_ready = false;
  // q, k, v = q_proj(normed), k_proj(normed), v_proj(normed)   (+ bias for Qwen2)
  if (f_qkv) {
    // The norm reads the unrounded residual sum when add_rmsnorm is fused too.
    b.rmsnorm_qkv(a.q.f32(), a.k.f32(), a.v.f32(), f_add ? a.sum.f32() : a.hidden.f32(), T,
                  w.input_norm.f32(), eps, w.qkv, t, a.xn.f32());
  } else {
    b.linear(a.q.f32(), a.normed.f32(), T, w.qkv.q, w.qkv.bq, t);
    b.linear(a.k.f32(), a.normed.f32(), T, w.qkv.k, w.qkv.bk, t);
    b.linear(a.v.f32(), a.normed.f32(), T, w.qkv.v, w.qkv.bv, t);
  }
  // q, k = q_norm(q), k_norm(k) per head (Qwen3); q, k = apply_rotary_pos_emb(q, k, cos, sin).
  // Fused: both in one fp32 pass with fp32 cos/sin.
  const RopeTable rope{a.rope_cos.f32(), a.rope_sin.f32(), a.ctx_cap};
  const Backend::NormRopeHeads qh{a.q.f32(), c.num_heads, w.q_norm ? w.q_norm.f32() : nullptr};
  const Backend::NormRopeHeads kh{a.k.f32(), c.num_kv_heads, w.k_norm ? w.k_norm.f32() : nullptr};
  // past_key_values.update(k, v), in the same op (one launch on a GPU for a fused 16/32-bit cache)
  const KvLayer& kv = cache.layer(layer);
  b.qk_norm_rope_kv_append(qh, kh, a.v.f32(), kv, T, hd, eps, rope, pos0, t, f_rope);
  // attn = softmax(q k^T * scaling + causal_mask) v: eager, or fused with an online softmax
  AttentionParams ap;
  ap.T = T, ap.n_heads = c.num_heads, ap.n_kv_heads = c.num_kv_heads, ap.head_dim = hd;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(hd));  // head_dim ** -0.5
  ap.act = t, ap.online = f_attn, ap.fp16_accumulation = f_attn && plan.fp16_accumulation;
  b.attention(a.attn.f32(), a.q.f32(), kv, pos0, ap);
  mlp_forward(layer, a, t, plan);
}

void Model::mlp_forward(int64_t layer, Activations& a, ActType t, const KernelPlan& plan) const {
  const auto& c = config_;
  Backend& b = *backend_;
  const LayerParams& w = layers_[static_cast<size_t>(layer)];
  const int64_t T = a.T, dim = c.hidden_size, ffn = c.intermediate_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const bool f_add = plan.fuses(layer, FusedGroup::kAddRmsnorm);
  const bool f_mlp = plan.fuses(layer, FusedGroup::kGateUpSilu);
  if (f_add && f_mlp) {
    // The same arithmetic as the three ops below, in two (docs/NUMERICS.md): attn_out =
    // o_proj(attn); hidden = round(hidden + attn_out) with the fp32 sum kept (add_rmsnorm's add,
    // in the GEMV's epilogue); normed = post_attention_layernorm(sum) as add_rmsnorm forms it and
    // mlp_act = silu(gate_proj(normed)) * up_proj(normed) (the norm in the gate_up kernel).
    b.linear_add_residual(a.attn_out.f32(), a.hidden.f32(), a.sum.f32(), a.attn.f32(), T, w.o_proj,
                          t);
    b.rmsnorm_gate_up_silu(a.mlp_act.f32(), a.normed.f32(), a.sum.f32(), T,
                           w.post_attention_norm.f32(), eps, w.gate_proj, w.up_proj, t,
                           a.gate.f32(), a.up.f32());
  } else {
    // attn_out = o_proj(attn)
    b.linear(a.attn_out.f32(), a.attn.f32(), T, w.o_proj, Weight{}, t);
    // hidden = hidden + attn_out; normed = post_attention_layernorm(hidden)
    if (f_add) {
      b.add_rmsnorm(a.hidden.f32(), a.attn_out.f32(), a.normed.f32(), nullptr,
                    w.post_attention_norm.f32(), T, dim, eps, t);
    } else {
      b.add(a.hidden.f32(), a.hidden.f32(), a.attn_out.f32(), T * dim, t);
      b.rmsnorm(a.normed.f32(), a.hidden.f32(), w.post_attention_norm.f32(), T, dim, eps, t);
    }
    // mlp_act = silu(gate_proj(normed)) * up_proj(normed)
    if (f_mlp) {
      b.gate_up_silu(a.mlp_act.f32(), a.normed.f32(), T, w.gate_proj, w.up_proj, t, a.gate.f32(),
                     a.up.f32());
    } else {
      b.linear(a.gate.f32(), a.normed.f32(), T, w.gate_proj, Weight{}, t);
      b.linear(a.up.f32(), a.normed.f32(), T, w.up_proj, Weight{}, t);
      b.silu_mul(a.mlp_act.f32(), a.gate.f32(), a.up.f32(), T * ffn, t);
    }
  }
  // mlp_out = down_proj(mlp_act); hidden = hidden + mlp_out (a fused plan defers the add to the
  // next norm, which fuses it: add_rmsnorm). When the next layer fuses add_rmsnorm and
  // rmsnorm_qkv, its add_rmsnorm's normed is never read, so what is left of it, the add with the
  // fp32 sum kept, runs here in the down_proj GEMV's epilogue: the same statements.
  const bool last = layer + 1 == c.num_layers;
  if (!last && plan.fuses(layer + 1, FusedGroup::kAddRmsnorm) &&
      plan.fuses(layer + 1, FusedGroup::kRmsnormQkv)) {
    b.linear_add_residual(a.mlp_out.f32(), a.hidden.f32(), a.sum.f32(), a.mlp_act.f32(), T,
                          w.down_proj, t);
    a.sum_ready = true;
    return;
  }
  b.linear(a.mlp_out.f32(), a.mlp_act.f32(), T, w.down_proj, Weight{}, t);
  const bool next_fuses_add = !last ? plan.fuses(layer + 1, FusedGroup::kAddRmsnorm)
                                    : f_add;  // the final norm follows the last layer
  if (next_fuses_add)
    a.pending_mlp = true;
  else
    b.add(a.hidden.f32(), a.hidden.f32(), a.mlp_out.f32(), T * dim, t);
}

void Model::download(const Buffer& buf, int64_t n, std::vector<float>& out) const {
  out.resize(static_cast<size_t>(n));
  backend_->download(out.data(), buf, 0, out.size() * sizeof(float));
}

void Model::residual_after(Activations& a, ActType t, std::vector<float>& out) const {
  const int64_t n = a.T * config_.hidden_size;
  if (!a.pending_mlp) return download(a.hidden, n, out);
  backend_->add(a.resid.f32(), a.hidden.f32(), a.mlp_out.f32(), n, t);
  download(a.resid, n, out);
}

// normed = norm(hidden), adding a pending mlp_out first when the plan fused it.
void Model::final_norm(Activations& a, ActType t) const {
  const int64_t dim = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  if (a.pending_mlp)
    backend_->add_rmsnorm(a.hidden.f32(), a.mlp_out.f32(), a.normed.f32(), nullptr,
                          final_norm_.f32(), a.T, dim, eps, t);
  else
    backend_->rmsnorm(a.normed.f32(), a.hidden.f32(), final_norm_.f32(), a.T, dim, eps, t);
  a.pending_mlp = false;
}

Status Model::forward(std::span<const int32_t> tokens, Precision p, KvCache& cache, LogitsFor which,
                      std::vector<float>& logits, ForwardTrace* trace, const KernelPlan* plan_in,
                      Activations* ws) const {
  const auto& c = config_;
  const int64_t T = static_cast<int64_t>(tokens.size()), dim = c.hidden_size;
  if (T == 0) return make_error("forward: no tokens");
  for (int32_t id : tokens)
    if (id < 0 || id >= c.vocab_size)
      return make_error("token id {} is out of range: the model's vocab_size is {}", id,
                        c.vocab_size);
  const KernelPlan standard = standard_plan();
  const KernelPlan& plan = plan_in ? *plan_in : standard;
  if (static_cast<int64_t>(plan.layers.size()) != c.num_layers)
    return make_error("forward: the kernel plan has {} layers, the model {}", plan.layers.size(),
                      c.num_layers);
  const ActType t = act_type(p);
  if (cache.act() != t || cache.formats() != plan.kv_formats())
    return make_error("forward: the KV cache was made for another precision or kernel plan");
  const int64_t pos0 = cache.size();
  FC_TRY(cache.reserve_more(T));
  Activations local;
  Activations& a = ws ? *ws : local;
  prepare(a, T, pos0 + T, which == LogitsFor::kLast ? 1 : T);
  Backend& b = *backend_;
  b.set_dot(plan.dot);
  const int32_t pos0_i32 = static_cast<int32_t>(pos0);
  b.upload(a.pos0, 0, &pos0_i32, sizeof(int32_t));
  b.upload(a.tokens, 0, tokens.data(), tokens.size() * sizeof(int32_t));
  a.dev_token = -1, a.dev_pos = -1;

  // hidden = embed_tokens(tokens)
  b.embed(a.hidden.f32(), a.tokens.i32(), T, embed_);
  if (trace) {
    trace->hidden.assign(1, {}), trace->layer_out.clear();
    download(a.hidden, T * dim, trace->hidden[0]);
  }
  // hidden = layer(hidden) for each decoder layer
  for (int64_t l = 0; l < c.num_layers; ++l) {
    layer_forward(l, a, cache, t, plan);
    if (trace) {
      trace->layer_out.emplace_back();
      residual_after(a, t, trace->layer_out.back());
      if (l + 1 < c.num_layers) trace->hidden.push_back(trace->layer_out.back());
    }
  }
  cache.set_size(pos0 + T);
  // normed = norm(hidden)
  final_norm(a, t);
  if (trace) trace->hidden.emplace_back(), download(a.normed, T * dim, trace->hidden.back());
  // logits = lm_head(normed)
  const int64_t first = which == LogitsFor::kLast ? T - 1 : 0;
  const int64_t n_out = T - first;
  b.logits(a.logits.f32(), a.normed.f32() + first * dim, n_out, lm_head_, t);
  download(a.logits, n_out * c.vocab_size, logits);
  return b.status();
}

DecodeGraph& DecodeGraph::operator=(DecodeGraph&& o) noexcept {
  if (this != &o) {
    reset();
    backend_ = std::move(o.backend_);
    id_ = std::exchange(o.id_, -1);
    warm_ = std::exchange(o.warm_, false);
    capacity_ = std::exchange(o.capacity_, -1);
    epoch_ = o.epoch_;
    mode_ = o.mode_;
  }
  return *this;
}

void DecodeGraph::reset() {
  if (backend_ && id_ >= 0) backend_->drop_graph(id_);
  id_ = -1, warm_ = false, capacity_ = -1;
}

// Every group fused in every layer, with fp32 accumulation and the contract dot: what
// Backend::decoder_stack runs.
static bool fuses_everything(const KernelPlan& plan) {
  if (plan.fp16_accumulation || plan.dot != DotChoice::kContract) return false;
  for (const LayerPlan& l : plan.layers)
    for (bool on : l.fused)
      if (!on) return false;
  return !plan.layers.empty();
}

bool Model::stack_step(Activations& a, KvCache& cache, ActType t, const KernelPlan& plan) const {
  const auto& c = config_;
  Backend& b = *backend_;
  if (!fuses_everything(plan)) return false;
  // layer_forward's first op for layer 0 (add_rmsnorm, no pending delta); rmsnorm_qkv reads sum.
  b.add_rmsnorm(a.hidden.f32(), nullptr, a.normed.f32(), a.sum.f32(), layers_[0].input_norm.f32(),
                1, c.hidden_size, static_cast<float>(c.rms_norm_eps), t);
  a.sum_ready = true;
  std::vector<Backend::StackLayer> layers(static_cast<size_t>(c.num_layers));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerParams& w = layers_[static_cast<size_t>(l)];
    layers[static_cast<size_t>(l)] = {&w.qkv,
                                      w.input_norm.f32(),
                                      w.q_norm ? w.q_norm.f32() : nullptr,
                                      w.k_norm ? w.k_norm.f32() : nullptr,
                                      &w.o_proj,
                                      w.post_attention_norm.f32(),
                                      &w.gate_proj,
                                      &w.up_proj,
                                      &w.down_proj,
                                      &cache.layer(l)};
  }
  Backend::DecoderStack s;
  s.layers = layers.data(), s.n_layers = c.num_layers, s.dim = c.hidden_size;
  s.ffn = c.intermediate_size, s.n_heads = c.num_heads, s.n_kv_heads = c.num_kv_heads;
  s.head_dim = c.head_dim, s.eps = static_cast<float>(c.rms_norm_eps), s.act = t;
  s.rope = {a.rope_cos.f32(), a.rope_sin.f32(), a.ctx_cap}, s.pos0 = a.pos0.i32();
  s.hidden = a.hidden.f32(), s.sum = a.sum.f32(), s.normed = a.normed.f32(), s.q = a.q.f32();
  s.k = a.k.f32(), s.v = a.v.f32(), s.attn = a.attn.f32(), s.attn_out = a.attn_out.f32();
  s.mlp_act = a.mlp_act.f32(), s.mlp_out = a.mlp_out.f32();
  if (!b.decoder_stack(s)) return false;  // layer_forward runs the ops (layer 0's add is done)
  // As after the last layer_forward of a fused plan: its mlp_out is pending for the final norm.
  a.sum_ready = false, a.pending_mlp = true;
  return true;
}

void Model::step_ops(Activations& a, KvCache& cache, ActType t, const KernelPlan& plan,
                     const SamplingParams& s) const {
  Backend& b = *backend_;
  b.set_dot(plan.dot);
  b.embed(a.hidden.f32(), a.tokens.i32(), 1, embed_);
  if (!stack_step(a, cache, t, plan))
    for (int64_t l = 0; l < config_.num_layers; ++l) layer_forward(l, a, cache, t, plan);
  final_norm(a, t);
  b.logits(a.logits.f32(), a.normed.f32(), 1, lm_head_, t);
  if (s.greedy())
    b.argmax_advance(a.tokens.i32(), a.logits.f32(), config_.vocab_size, a.pos0.i32());
  else
    b.sample_advance(a.tokens.i32(), a.logits.f32(), config_.vocab_size,
                     {s.temperature, s.top_k, s.top_p, s.min_p}, a.pos0.i32());
}

static bool same_mode(const SamplingParams& a, const SamplingParams& b) {
  if (a.greedy() || b.greedy()) return a.greedy() == b.greedy();
  return a.temperature == b.temperature && a.top_k == b.top_k && a.top_p == b.top_p &&
         a.min_p == b.min_p;
}

Status Model::decode_greedy(int32_t token, Precision p, KvCache& cache, const KernelPlan& plan,
                            Activations& a, DecodeGraph& g, int32_t* next) const {
  return decode_step(token, p, cache, plan, a, g, SamplingParams{}, 0.0, next);
}

Status Model::decode_step(int32_t token, Precision p, KvCache& cache, const KernelPlan& plan,
                          Activations& a, DecodeGraph& g, const SamplingParams& s, double u,
                          int32_t* next) const {
  const auto& c = config_;
  Backend& b = *backend_;
  if (!b.supports_graphs())
    return make_error("decode_greedy: the {} backend has no graphs", b.name());
  if (!s.greedy() && !b.supports_device_sampling())
    return make_error("decode_step: the {} backend cannot sample on the device", b.name());
  if (token < 0 || token >= c.vocab_size)
    return make_error("token id {} is out of range: the model's vocab_size is {}", token,
                      c.vocab_size);
  if (static_cast<int64_t>(plan.layers.size()) != c.num_layers)
    return make_error("decode_greedy: the kernel plan has {} layers, the model {}",
                      plan.layers.size(), c.num_layers);
  const ActType t = act_type(p);
  if (cache.act() != t || cache.formats() != plan.kv_formats())  // per layer, as forward() checks
    return make_error("decode_step: the KV cache was made for another precision or kernel plan");
  const int64_t pos0 = cache.size();
  FC_TRY(cache.reserve_more(1));
  prepare(a, 1, pos0 + 1);
  // The graph holds the cache's and the workspace's pointers: either moved, it is stale.
  if (g.backend_ != backend_ || g.capacity_ != cache.layer(0).capacity || g.epoch_ != a.epoch ||
      !same_mode(g.mode_, s)) {
    g.reset();
    g.backend_ = backend_, g.capacity_ = cache.layer(0).capacity, g.epoch_ = a.epoch;
    g.mode_ = s;
  }
  if (!s.greedy()) b.set_draw(u);  // before the step: the recorded sampler reads it
  if (a.dev_token != token || a.dev_pos != pos0) {  // after a prefill, or another caller
    const int32_t pos0_i32 = static_cast<int32_t>(pos0);
    b.upload(a.pos0, 0, &pos0_i32, sizeof(int32_t));
    b.upload(a.tokens, 0, &token, sizeof(int32_t));
  }
  // The first step with these buffers runs eagerly, sizing the backend's workspaces (which
  // cannot grow inside a recording); the second records; every later one replays.
  if (!g.recorded() && g.warm_) {
    b.begin_capture();
    step_ops(a, cache, t, plan, s);
    g.id_ = b.end_capture();
    FC_TRY(b.status());
  }
  if (g.recorded())
    b.replay(g.id_);
  else
    step_ops(a, cache, t, plan, s), g.warm_ = true;
  b.download(next, a.tokens, 0, sizeof(int32_t));
  cache.set_size(pos0 + 1);
  a.dev_token = *next, a.dev_pos = pos0 + 1;
  return b.status();
}

void Model::read_logits(const Activations& a, std::vector<float>& logits) const {
  download(a.logits, config_.vocab_size, logits);
}

Status Model::run_layer(int64_t layer, const std::vector<float>& in, std::vector<float>& out,
                        Precision p, KvCache& cache, const KernelPlan& plan, Activations& a) const {
  const int64_t dim = config_.hidden_size, T = static_cast<int64_t>(in.size()) / dim;
  if (layer < 0 || layer >= config_.num_layers || T <= 0 ||
      static_cast<int64_t>(in.size()) != T * dim)
    return make_error("run_layer: layer {} of {}, input of {} values (dim {})", layer,
                      config_.num_layers, in.size(), dim);
  const ActType t = act_type(p);
  if (cache.act() != t || cache.formats() != plan.kv_formats())
    return make_error("run_layer: the KV cache was made for another precision or kernel plan");
  const int64_t pos0 = cache.size();
  FC_TRY(cache.reserve_more(T));
  prepare(a, T, pos0 + T);
  std::vector<float> x(in);
  for (float& v : x) v = round_one(t, v);
  const int32_t pos0_i32 = static_cast<int32_t>(pos0);
  backend_->upload(a.pos0, 0, &pos0_i32, sizeof(int32_t));
  backend_->upload(a.hidden, 0, x.data(), x.size() * sizeof(float));
  a.dev_token = -1, a.dev_pos = -1;
  backend_->set_dot(plan.dot);
  layer_forward(layer, a, cache, t, plan);
  residual_after(a, t, out);
  return backend_->status();
}

}  // namespace fusecheck
