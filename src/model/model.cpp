#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/fused.h"
#include "kernels/cpu/simd.h"

namespace fusecheck {

using cpu::ActType;

Result<Precision> parse_precision(std::string_view name) {
  if (name == "model") return Precision::kModel;
  if (name == "fp32") return Precision::kFp32;
  return make_error("--precision: expected \"model\" or \"fp32\", found \"{}\"", printable(name));
}

Result<Model> Model::load(const std::string& dir, const LoadOptions& opt) {
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
  return m;
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
  return KvCache(config_.num_layers, config_.num_kv_heads, config_.head_dim, max_context,
                 act_type(p), plan ? plan->kv_format : KvFormat::kSame,
                 plan ? plan->kv_scale : KvScale::kPerTensor);
}

void Model::prepare(Activations& a, int64_t T, int64_t n_ctx) const {
  const auto& c = config_;
  const size_t t = static_cast<size_t>(T);
  const size_t dim = static_cast<size_t>(c.hidden_size);
  const size_t ffn = static_cast<size_t>(c.intermediate_size);
  const size_t q_dim = static_cast<size_t>(c.num_heads * c.head_dim);
  const size_t kv_dim = static_cast<size_t>(c.num_kv_heads * c.head_dim);
  const size_t hd = static_cast<size_t>(c.head_dim);
  a.T = T;
  a.hidden.resize(t * dim), a.normed.resize(t * dim), a.attn_out.resize(t * dim);
  a.mlp_out.resize(t * dim), a.sum.resize(t * dim), a.xn.resize(t * dim);
  a.q.resize(t * q_dim), a.attn.resize(t * q_dim);
  a.k.resize(t * kv_dim), a.v.resize(t * kv_dim);
  a.gate.resize(t * ffn), a.up.resize(t * ffn), a.mlp_act.resize(t * ffn);
  a.cos.resize(hd / 2), a.sin.resize(hd / 2), a.acc.resize(hd);
  a.k_ctx.resize(static_cast<size_t>(n_ctx) * hd), a.v_ctx.resize(static_cast<size_t>(n_ctx) * hd);
  a.scores.resize(static_cast<size_t>(n_ctx));
  a.pending_mlp = false;
}

// Attention over the cache (which already holds this call's keys and values), causal: token t at
// position pos0 + t sees positions 0 .. pos0 + t. Query head h reads kv head h / (nh / nkv)
// (repeat_kv). Eager (scores rounded, two-pass softmax) or fused (online softmax in fp32).
void Model::attention(int64_t layer, Activations& a, int64_t pos0, const KvCache& cache, ActType t,
                      const KernelPlan& plan) const {
  const auto& c = config_;
  const int64_t hd = c.head_dim, nh = c.num_heads, nkv = c.num_kv_heads, n_rep = nh / nkv;
  const int64_t q_dim = nh * hd, n_ctx = pos0 + a.T;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));  // head_dim ** -0.5
  const bool fused = plan.fuses(layer, FusedGroup::kAttention);
  for (int64_t kvh = 0; kvh < nkv; ++kvh) {
    cache.load_head(layer, kvh, n_ctx, a.k_ctx.data(), a.v_ctx.data());
    for (int64_t h = kvh * n_rep; h < (kvh + 1) * n_rep; ++h)
      for (int64_t tok = 0; tok < a.T; ++tok) {
        float* out = &a.attn[tok * q_dim + h * hd];
        const float* q = &a.q[tok * q_dim + h * hd];
        if (fused)
          cpu::fused_attention(out, q, a.k_ctx.data(), a.v_ctx.data(), pos0 + tok + 1, hd, hd,
                               scale, t, plan.fp16_accumulation, a.acc.data());
        else
          cpu::attention_head_simd(out, q, a.k_ctx.data(), a.v_ctx.data(), pos0 + tok + 1, hd, hd,
                                   scale, t, a.scores.data());
      }
  }
}

void Model::layer_forward(int64_t layer, Activations& a, int64_t pos0, KvCache& cache, ActType t,
                          const KernelPlan& plan) const {
  const auto& c = config_;
  const LayerWeights& w = weights_.layers[static_cast<size_t>(layer)];
  const int64_t T = a.T, dim = c.hidden_size, ffn = c.intermediate_size, hd = c.head_dim;
  const int64_t q_dim = c.num_heads * hd, kv_dim = c.num_kv_heads * hd;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const bool f_add = plan.fuses(layer, FusedGroup::kAddRmsnorm);
  const bool f_qkv = plan.fuses(layer, FusedGroup::kRmsnormQkv);
  const bool f_rope = plan.fuses(layer, FusedGroup::kQkNormRope);
  const bool f_mlp = plan.fuses(layer, FusedGroup::kGateUpSilu);
  const cpu::Weight none{};

  // --- self-attention block ---
  // normed = input_layernorm(hidden); a fused plan first adds the previous layer's pending mlp_out
  // (fused_add_rmsnorm), and fused_rmsnorm_qkv keeps the normalised input in fp32.
  for (int64_t tok = 0; tok < T; ++tok) {
    float* h = &a.hidden[tok * dim];
    const float* pending = a.pending_mlp ? &a.mlp_out[tok * dim] : nullptr;
    if (f_add || pending)
      cpu::fused_add_rmsnorm(h, pending, &a.normed[tok * dim], &a.sum[tok * dim],
                             w.input_norm.data(), dim, eps, t, t);
    else if (!f_qkv)
      cpu::rmsnorm(&a.normed[tok * dim], h, w.input_norm.data(), dim, eps, t);
  }
  a.pending_mlp = false;
  // q, k, v = q_proj(normed), k_proj(normed), v_proj(normed)   (+ bias for Qwen2)
  if (f_qkv) {
    // The norm reads the unrounded residual sum when add_rmsnorm is fused too.
    cpu::fused_rmsnorm_qkv(a.q.data(), a.k.data(), a.v.data(),
                           f_add ? a.sum.data() : a.hidden.data(), T, w.input_norm.data(), eps,
                           w.q_proj, w.k_proj, w.v_proj, w.q_bias, w.k_bias, w.v_bias, t,
                           a.xn.data(), pool_);
  } else {
    cpu::linear_simd(a.q.data(), a.normed.data(), T, w.q_proj, w.q_bias, t, pool_);
    cpu::linear_simd(a.k.data(), a.normed.data(), T, w.k_proj, w.k_bias, t, pool_);
    cpu::linear_simd(a.v.data(), a.normed.data(), T, w.v_proj, w.v_bias, t, pool_);
  }
  const bool qk_norm = !w.q_norm.empty();
  for (int64_t tok = 0; tok < T; ++tok) {
    float* q = &a.q[tok * q_dim];
    float* k = &a.k[tok * kv_dim];
    if (f_rope) {
      // q, k = rope(q_norm(q)), rope(k_norm(k)) in one fp32 pass with fp32 cos/sin
      rope_.cos_sin(pos0 + tok, ActType::F32, a.cos.data(), a.sin.data());
      cpu::fused_qk_norm_rope(q, c.num_heads, hd, qk_norm ? w.q_norm.data() : nullptr, eps,
                              a.cos.data(), a.sin.data(), t);
      cpu::fused_qk_norm_rope(k, c.num_kv_heads, hd, qk_norm ? w.k_norm.data() : nullptr, eps,
                              a.cos.data(), a.sin.data(), t);
      continue;
    }
    // q, k = q_norm(q), k_norm(k) per head (Qwen3)
    if (qk_norm) {
      for (int64_t h = 0; h < c.num_heads; ++h)
        cpu::rmsnorm(q + h * hd, q + h * hd, w.q_norm.data(), hd, eps, t);
      for (int64_t h = 0; h < c.num_kv_heads; ++h)
        cpu::rmsnorm(k + h * hd, k + h * hd, w.k_norm.data(), hd, eps, t);
    }
    // q, k = apply_rotary_pos_emb(q, k, cos, sin)
    rope_.cos_sin(pos0 + tok, t, a.cos.data(), a.sin.data());
    for (int64_t h = 0; h < c.num_heads; ++h)
      cpu::rope_rotate_half(q + h * hd, hd, a.cos.data(), a.sin.data(), t);
    for (int64_t h = 0; h < c.num_kv_heads; ++h)
      cpu::rope_rotate_half(k + h * hd, hd, a.cos.data(), a.sin.data(), t);
  }
  // past_key_values.update(k, v)
  cache.store(layer, pos0, T, a.k.data(), a.v.data());
  // attn = softmax(q k^T * scaling + causal_mask) v
  attention(layer, a, pos0, cache, t, plan);
  // attn_out = o_proj(attn)
  cpu::linear_simd(a.attn_out.data(), a.attn.data(), T, w.o_proj, none, t, pool_);

  // --- MLP block ---
  // hidden = hidden + attn_out; normed = post_attention_layernorm(hidden)
  for (int64_t tok = 0; tok < T; ++tok) {
    float* h = &a.hidden[tok * dim];
    if (f_add) {
      cpu::fused_add_rmsnorm(h, &a.attn_out[tok * dim], &a.normed[tok * dim], nullptr,
                             w.post_attention_norm.data(), dim, eps, t, t);
    } else {
      cpu::add(h, h, &a.attn_out[tok * dim], static_cast<size_t>(dim), t);
      cpu::rmsnorm(&a.normed[tok * dim], h, w.post_attention_norm.data(), dim, eps, t);
    }
  }
  // mlp_act = silu(gate_proj(normed)) * up_proj(normed)
  if (f_mlp) {
    cpu::fused_gate_up_silu(a.mlp_act.data(), a.normed.data(), T, w.gate_proj, w.up_proj, t,
                            a.gate.data(), a.up.data(), pool_);
  } else {
    cpu::linear_simd(a.gate.data(), a.normed.data(), T, w.gate_proj, none, t, pool_);
    cpu::linear_simd(a.up.data(), a.normed.data(), T, w.up_proj, none, t, pool_);
    cpu::silu_mul(a.mlp_act.data(), a.gate.data(), a.up.data(), static_cast<size_t>(T * ffn), t);
  }
  // mlp_out = down_proj(mlp_act); hidden = hidden + mlp_out (a fused plan defers the add to the
  // next norm, which fuses it: fused_add_rmsnorm)
  cpu::linear_simd(a.mlp_out.data(), a.mlp_act.data(), T, w.down_proj, none, t, pool_);
  const bool next_fuses_add = layer + 1 < c.num_layers
                                  ? plan.fuses(layer + 1, FusedGroup::kAddRmsnorm)
                                  : f_add;  // the final norm follows the last layer
  if (next_fuses_add)
    a.pending_mlp = true;
  else
    cpu::add(a.hidden.data(), a.hidden.data(), a.mlp_out.data(), a.hidden.size(), t);
}

void Model::residual_after(const Activations& a, ActType t, std::vector<float>& out) const {
  out = a.hidden;
  if (a.pending_mlp) cpu::add(out.data(), out.data(), a.mlp_out.data(), out.size(), t);
}

// normed = norm(hidden), adding a pending mlp_out first when the plan fused it.
void Model::final_norm(Activations& a, ActType t, const KernelPlan& plan) const {
  (void)plan;
  const int64_t dim = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  for (int64_t tok = 0; tok < a.T; ++tok) {
    float* h = &a.hidden[tok * dim];
    if (a.pending_mlp)
      cpu::fused_add_rmsnorm(h, &a.mlp_out[tok * dim], &a.normed[tok * dim], nullptr,
                             weights_.final_norm.data(), dim, eps, t, t);
    else
      cpu::rmsnorm(&a.normed[tok * dim], h, weights_.final_norm.data(), dim, eps, t);
  }
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
  if (cache.act() != t || cache.format() != plan.kv_format)
    return make_error("forward: the KV cache was made for another precision or kernel plan");
  const int64_t pos0 = cache.size();
  FC_TRY(cache.reserve_more(T));
  Activations local;
  Activations& a = ws ? *ws : local;
  prepare(a, T, pos0 + T);

  // hidden = embed_tokens(tokens)
  for (int64_t tok = 0; tok < T; ++tok)
    cpu::weight_row_f32(weights_.embed_tokens, tokens[static_cast<size_t>(tok)],
                        &a.hidden[tok * dim]);
  if (trace) trace->hidden.assign(1, a.hidden), trace->layer_out.clear();
  // hidden = layer(hidden) for each decoder layer
  for (int64_t l = 0; l < c.num_layers; ++l) {
    layer_forward(l, a, pos0, cache, t, plan);
    if (trace) {
      trace->layer_out.emplace_back();
      residual_after(a, t, trace->layer_out.back());
      if (l + 1 < c.num_layers) trace->hidden.push_back(trace->layer_out.back());
    }
  }
  cache.set_size(pos0 + T);
  // normed = norm(hidden)
  final_norm(a, t, plan);
  if (trace) trace->hidden.push_back(a.normed);
  // logits = lm_head(normed)
  const int64_t first = which == LogitsFor::kLast ? T - 1 : 0;
  const int64_t n_out = T - first;
  logits.resize(static_cast<size_t>(n_out * c.vocab_size));
  cpu::linear_simd(logits.data(), &a.normed[first * dim], n_out, weights_.lm_head, cpu::Weight{}, t,
                   pool_);
  return ok_status();
}

}  // namespace fusecheck
