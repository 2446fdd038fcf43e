"""A compact PyTorch Qwen3ForCausalLM (nano-vllm's layout; Qwen2 and Llama checkpoints too) whose
constructor asks fusecheck which kernels to run, as the first sketch of the feature put it:

    model = Qwen3ForCausalLM(config, use_custom_kernels=True)   # warns and falls back if needed
    model = Qwen3ForCausalLM(config, use_custom_kernels=True, strict=True)  # raises instead
    model = Qwen3ForCausalLM(config, use_custom_kernels=True, force_fused=True)  # fuses anyway

The standard path rounds where transformers' eager code does (bf16 ops, fp32 softmax). The fused
path is what fused kernels change: the residual add and RMSNorm in one step with the sum kept in
fp32, and q/k-norm plus RoPE in one step on fp32 values, each rounded to the model dtype once.

Run: python3 qwen3_with_compatibility.py CHECKPOINT_DIR [--use-custom-kernels] [--strict]
         [--force-fused] [--kernels fused] [--token-ids 1,2,3] [--max-tokens 16]
"""

import argparse
import json
import os
import sys
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn
import torch.nn.functional as F

import fusecheck

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import safe_open  # noqa: E402

# Per architecture: q/k RMSNorm (Qwen3) and q/k/v biases (Qwen2; Llama's config says).
ARCHITECTURES = {
    "qwen3": {"qk_norm": True, "qkv_bias": False},
    "qwen2": {"qk_norm": False, "qkv_bias": True},
    "llama": {"qk_norm": False, "qkv_bias": None},
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Config:
    """nano-vllm's Config, reduced: the checkpoint path and its config.json."""

    model: str
    kernels: str = "fused"  # the fused kernel profile to ask fusecheck about
    hf_config: dict = field(default_factory=dict)

    def __post_init__(self):
        with open(os.path.join(self.model, "config.json")) as f:
            self.hf_config = json.load(f)
        c = self.hf_config
        self.model_type = c["model_type"]
        if self.model_type not in ARCHITECTURES:
            raise ValueError(f"{self.model}/config.json: model_type {self.model_type!r} is not supported")
        self.hidden_size, self.vocab_size = c["hidden_size"], c["vocab_size"]
        self.num_layers, self.num_heads = c["num_hidden_layers"], c["num_attention_heads"]
        self.num_kv_heads = c.get("num_key_value_heads", self.num_heads)
        self.head_dim = c.get("head_dim") or self.hidden_size // self.num_heads
        self.intermediate_size, self.eps = c["intermediate_size"], c["rms_norm_eps"]
        rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            raise ValueError(f"{self.model}/config.json: only default RoPE is implemented here")
        self.rope_theta = rope.get("rope_theta", c.get("rope_theta", 10000.0))
        self.tie_word_embeddings = c.get("tie_word_embeddings", False)
        self.dtype = DTYPES[c.get("dtype") or c.get("torch_dtype") or "float32"]
        arch = ARCHITECTURES[self.model_type]
        self.qk_norm = arch["qk_norm"]
        bias = arch["qkv_bias"]
        self.qkv_bias = c.get("attention_bias", False) if bias is None else bias


def rms_norm(x32, eps):
    """RMSNorm on fp32 input; returns fp32 (the caller rounds)."""
    return x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(n)), eps

    def forward(self, x):  # transformers: weight * normalised.to(input dtype)
        return self.weight * rms_norm(x.float(), self.eps).to(x.dtype)

    def fused(self, x, residual32=None):
        """fused_add_rmsnorm: (x + residual) kept in fp32, normalised in fp32, rounded once.
        Returns (output in x's dtype, the fp32 sum for the next residual add)."""
        s = x.float() if residual32 is None else x.float() + residual32
        return (self.weight.float() * rms_norm(s, self.eps)).to(x.dtype), s


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.q_proj = nn.Linear(c.hidden_size, c.num_heads * c.head_dim, bias=c.qkv_bias)
        self.k_proj = nn.Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=c.qkv_bias)
        self.v_proj = nn.Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=c.qkv_bias)
        self.o_proj = nn.Linear(c.num_heads * c.head_dim, c.hidden_size, bias=False)
        if c.qk_norm:
            self.q_norm, self.k_norm = RMSNorm(c.head_dim, c.eps), RMSNorm(c.head_dim, c.eps)

    def qk(self, q, k, cos32, sin32, fused):
        """q/k norm (Qwen3) and RoPE. q: [T, nh, hd], k: [T, nkv, hd]; cos32/sin32: [T, 1, hd]."""
        if fused:  # qk_norm_rope: fp32 throughout, one rounding at the end
            out = []
            for x, norm in ((q, getattr(self, "q_norm", None)), (k, getattr(self, "k_norm", None))):
                x32 = x.float()
                if norm is not None:
                    x32 = norm.weight.float() * rms_norm(x32, norm.eps)
                out.append((x32 * cos32 + rotate_half(x32) * sin32).to(x.dtype))
            return out
        if self.c.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = cos32.to(q.dtype), sin32.to(q.dtype)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin

    def forward(self, x, cos32, sin32, cache, fused):
        c, T = self.c, x.shape[0]
        q = self.q_proj(x).view(T, c.num_heads, c.head_dim)
        k = self.k_proj(x).view(T, c.num_kv_heads, c.head_dim)
        v = self.v_proj(x).view(T, c.num_kv_heads, c.head_dim)
        q, k = self.qk(q, k, cos32, sin32, fused)
        if cache:  # [n_ctx, nkv, hd]
            k, v = torch.cat([cache[0], k]), torch.cat([cache[1], v])
        cache[:] = [k, v]
        rep = c.num_heads // c.num_kv_heads
        qh = q.transpose(0, 1)  # [nh, T, hd]
        kh = k.transpose(0, 1).repeat_interleave(rep, 0)
        vh = v.transpose(0, 1).repeat_interleave(rep, 0)
        # [nh, T, n_ctx]; the scale multiplies in fp32 (PyTorch 2's opmath; torch 1.13 would round
        # the scale to bf16 first).
        scores = torch.matmul(qh, kh.transpose(1, 2))
        scores = (scores.float() * c.head_dim**-0.5).to(q.dtype)
        n_ctx = k.shape[0]
        mask = torch.ones(T, n_ctx, dtype=torch.bool).tril(n_ctx - T)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        p = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(p, vh).transpose(0, 1).reshape(T, c.num_heads * c.head_dim)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        # SiLU on fp32, rounded once, as PyTorch 2's eager kernel computes it for bf16 (torch 1.13's
        # bf16 SiLU rounds differently, in about 30% of outputs).
        g = self.gate_proj(x)
        return self.down_proj(F.silu(g.float()).to(g.dtype) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.self_attn, self.mlp = Attention(c), MLP(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.eps)

    def forward(self, h, cos32, sin32, cache):
        h = h + self.self_attn(self.input_layernorm(h), cos32, sin32, cache, False)
        return h + self.mlp(self.post_attention_layernorm(h))

    def forward_fused(self, x, res32, cos32, sin32, cache):
        """x: the last sub-layer's output not yet added to the fp32 residual res32 (None at 0)."""
        normed, res32 = self.input_layernorm.fused(x, res32)
        a = self.self_attn(normed, cos32, sin32, cache, True)
        normed, res32 = self.post_attention_layernorm.fused(a, res32)
        return self.mlp(normed), res32


class Qwen3Model(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c.num_layers))
        self.norm = RMSNorm(c.hidden_size, c.eps)

    def rope(self, positions):  # transformers' default RoPE: fp32 angles, [T, 1, hd]
        c = self.c
        inv = 1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.int64).float() / c.head_dim))
        freqs = positions.float()[:, None] * inv[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)[:, None, :]
        return emb.cos(), emb.sin()

    def forward(self, ids, positions, caches, fused):
        cos32, sin32 = self.rope(positions)
        h = self.embed_tokens(ids)
        if not fused:
            for layer, cache in zip(self.layers, caches):
                h = layer(h, cos32, sin32, cache)
            return self.norm(h)
        res32 = None
        for layer, cache in zip(self.layers, caches):
            h, res32 = layer.forward_fused(h, res32, cos32, sin32, cache)
        return self.norm.fused(h, res32)[0]


class Qwen3ForCausalLM(nn.Module):
    def __init__(self, config: Config, use_custom_kernels=False, strict=False, force_fused=False):
        super().__init__()
        self.config = config
        self.decision = None
        self.use_fused = False
        if use_custom_kernels or force_fused:
            # Before any weight exists: reads only headers and norm tensors. Under strict an
            # INCOMPATIBLE model raises fusecheck.IncompatibleModelError here.
            self.decision = fusecheck.decide_kernels(
                config.model, kernels=config.kernels, strict=strict, force=force_fused
            )
            self.use_fused = self.decision.use_fused
            if self.decision.message:
                warnings.warn(self.decision.message, RuntimeWarning, stacklevel=2)
        self.model = Qwen3Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.to(config.dtype)

    @torch.no_grad()
    def forward(self, ids, positions, caches):
        return self.lm_head(self.model(ids, positions, caches, self.use_fused))

    @torch.no_grad()
    def generate_greedy(self, prompt, max_tokens):
        """Greedy decoding through a KV cache: the prompt at once, then one token per step.
        Returns (token ids, the logits each was chosen from as fp32 [max_tokens, vocab])."""
        caches = [[] for _ in range(self.config.num_layers)]
        ids = torch.tensor(prompt, dtype=torch.int64)
        pos = torch.arange(len(prompt))
        out, all_logits = [], []
        for _ in range(max_tokens):
            logits = self.forward(ids, pos, caches)[-1].float()
            all_logits.append(logits)
            out.append(int(torch.argmax(logits)))
            pos = pos[-1:] + 1
            ids = torch.tensor(out[-1:], dtype=torch.int64)
        return out, torch.stack(all_logits) if all_logits else torch.empty(0)


def load_weights(model: Qwen3ForCausalLM, path):
    """Every checkpoint tensor into its parameter; a missing, unused, mis-shaped or non-finite
    tensor is an error naming it (no silent wrong answers)."""
    params = dict(model.named_parameters())  # a tied lm_head.weight is embed_tokens' (dropped)
    seen = set()
    files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
    if not files:
        raise ValueError(f"{path}: no *.safetensors files")
    for name in files:
        with safe_open(os.path.join(path, name)) as f:
            for key in f.keys():
                if key not in params:
                    raise ValueError(f"{path}/{name}: tensor {key} is not used by this model")
                t = f.get_tensor(key)
                p = params[key]
                if tuple(t.shape) != tuple(p.shape):
                    raise ValueError(f"{path}/{name}: {key} has shape {tuple(t.shape)}, expected {tuple(p.shape)}")
                if not torch.isfinite(t).all():
                    raise ValueError(f"{path}/{name}: {key} holds NaN or Inf")
                with torch.no_grad():
                    p.copy_(t.to(p.dtype))
                seen.add(key)
    missing = sorted(set(params) - seen)
    if missing:
        raise ValueError(f"{path}: missing tensors: {', '.join(missing[:3])}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--use-custom-kernels", action="store_true")
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--force-fused", action="store_true")
    ap.add_argument("--kernels", default="fused")
    ap.add_argument("--token-ids", default="1,2,3")
    ap.add_argument("--max-tokens", type=int, default=16)
    a = ap.parse_args(argv)
    try:
        model = Qwen3ForCausalLM(Config(a.model, a.kernels), a.use_custom_kernels, a.strict, a.force_fused)
    except (fusecheck.IncompatibleModelError, fusecheck.CheckError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    load_weights(model, a.model)
    tokens, _ = model.generate_greedy([int(t) for t in a.token_ids.split(",")], a.max_tokens)
    print(json.dumps({"kernels": "fused" if model.use_fused else "standard", "token_ids": tokens}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
