"""Tiny Hugging Face checkpoints and their transformers reference outputs (tests/data/hf/).

Needs torch, transformers and safetensors (the GPU device image has them); runs on the CPU with
eager attention, so the numbers do not depend on a GPU.
Usage: python3 make_hf_tiny.py OUT_DIR      (writes OUT_DIR/<name>/...)

Each model is a seeded random init of a transformers architecture, shaped so that the engine's
code paths differ between them:
  qwen3-tiny   q/k RMSNorm, head_dim * heads != hidden, tied embeddings
  llama-tiny   grouped-query attention, untied lm_head
  qwen2-tiny   q/k/v projection biases, untied lm_head
  qwen3-tiny-extreme  qwen3-tiny's shape with a few k_norm channels near Qwen3-0.6B's 96.5x gain
Weights: embeddings N(0, 1), projections N(0, 1/fan_in) so activations stay O(1), biases
N(0, 0.5), norm gains log-normal exp(0.25 * N(0, 1)) like trained RMSNorm gains.

Written per model:
  fp32/, bf16/                 save_pretrained (config.json, generation_config.json,
                               model.safetensors); bf16 is the fp32 model cast with .to(bfloat16)
  reference.safetensors        logits_fp32.<i>   [seq_len, vocab] the fp32 model on sequence i
                               logits_bf16.<i>   [seq_len, vocab] the cast bf16 model on sequence i
                               hidden_fp32.1.<l> [seq_len, hidden] hidden_states[l] of sequence 1
                               (l = 0 embeddings, l = n_layers the final norm's output)
  reference.json               the sequences, 24-token greedy continuations (fp32, KV cache),
                               versions
hf_reference_ext.py then adds reference_ext.* (bf16 loaded with from_pretrained, a long sequence).
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)

ARCH = {"qwen3": (Qwen3Config, Qwen3ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
GREEDY_TOKENS = 24
SEQ_LENGTHS = (7, 16, 33)

QWEN3_SHAPE = dict(vocab_size=1000, hidden_size=64, intermediate_size=160, num_hidden_layers=4,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
                   rope_theta=1e6, tie_word_embeddings=True, max_position_embeddings=256)
# name -> (architecture, config, seed, {layer: largest k_norm gain} or None)
MODELS = {
    "qwen3-tiny": ("qwen3", QWEN3_SHAPE, 11, None),
    "llama-tiny": ("llama", dict(vocab_size=1000, hidden_size=64, intermediate_size=172,
                                 num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=4,
                                 rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                                 max_position_embeddings=256), 12, None),
    "qwen2-tiny": ("qwen2", dict(vocab_size=1000, hidden_size=64, intermediate_size=144,
                                 num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                 rms_norm_eps=1e-6, rope_theta=1e6, tie_word_embeddings=False,
                                 max_position_embeddings=256), 13, None),
    "qwen3-tiny-extreme": ("qwen3", QWEN3_SHAPE, 21, {1: 96.5, 3: 40.0}),
}


def init_matrices(model, cfg):
    """Scaled normal weights: O(1) activations through every layer."""
    model.model.embed_tokens.weight.normal_(0.0, 1.0)
    for name, p in model.named_parameters():
        if name.endswith("proj.weight"):
            p.normal_(0.0, 1.0 / (p.shape[1] ** 0.5))  # p: [out, in]
        elif name.endswith("proj.bias"):
            p.normal_(0.0, 0.5)
    if not cfg.tie_word_embeddings:
        model.lm_head.weight.normal_(0.0, 1.0 / (cfg.hidden_size ** 0.5))


def init_norm_gains(model, seed, extreme):
    """Log-normal positive gains; `extreme` plants large k_norm gains on a few RoPE pairs."""
    gen = torch.Generator().manual_seed(seed + 1)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.copy_(torch.exp(0.25 * torch.randn(p.shape, generator=gen)))
    for layer, top in (extreme or {}).items():
        gain = model.model.layers[layer].self_attn.k_norm.weight  # [head_dim]
        half = gain.shape[0] // 2
        # Channels i and i + head_dim/2 rotate together under rotate_half RoPE: plant both.
        chans = torch.randperm(half, generator=gen)[:3]
        values = torch.tensor([top, top * 0.6, top * 0.35])
        gain[chans] = values
        gain[chans + half] = values * 0.8


def make_model(arch, shape, seed, extreme):
    config_cls, model_cls = ARCH[arch]
    torch.manual_seed(seed)
    cfg = config_cls(**shape)
    cfg._attn_implementation = "eager"
    model = model_cls(cfg).eval()
    with torch.no_grad():
        init_matrices(model, cfg)
        init_norm_gains(model, seed, extreme)
    return cfg, model


def token_sequences(vocab, seed):
    gen = torch.Generator().manual_seed(seed + 7)
    # ids 0..2 are left out: they are the special tokens of most vocabularies
    return [torch.randint(3, vocab, (n,), generator=gen) for n in SEQ_LENGTHS]


def greedy(model, ids):
    out = model.generate(ids[None], max_new_tokens=GREEDY_TOKENS, do_sample=False, use_cache=True,
                         pad_token_id=0, eos_token_id=None)
    return out[0, len(ids):].tolist()


def write_model(out_dir, name):
    arch, shape, seed, extreme = MODELS[name]
    root = os.path.join(out_dir, name)
    cfg, model = make_model(arch, shape, seed, extreme)
    model.save_pretrained(os.path.join(root, "fp32"), safe_serialization=True)
    seqs = token_sequences(cfg.vocab_size, seed)
    tensors = {}
    info = {"name": name, "architecture": type(model).__name__, "seed": seed,
            "made_by": "scripts/reference/make_hf_tiny.py",
            "transformers": transformers.__version__, "torch": torch.__version__,
            "device": "cpu", "attn_implementation": "eager",
            "sequences": [s.tolist() for s in seqs], "greedy": []}
    with torch.no_grad():
        for i, s in enumerate(seqs):
            o = model(s[None], output_hidden_states=(i == 1))
            tensors[f"logits_fp32.{i}"] = o.logits[0].float().contiguous()
            if i == 1:
                for layer, h in enumerate(o.hidden_states):
                    tensors[f"hidden_fp32.1.{layer}"] = h[0].float().contiguous()
            info["greedy"].append(greedy(model, s))
        bf16 = model.to(torch.bfloat16)
        bf16.save_pretrained(os.path.join(root, "bf16"), safe_serialization=True)
        for i, s in enumerate(seqs):
            tensors[f"logits_bf16.{i}"] = bf16(s[None]).logits[0].float().contiguous()
    save_file(tensors, os.path.join(root, "reference.safetensors"))
    with open(os.path.join(root, "reference.json"), "w") as f:
        json.dump(info, f, indent=1)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_hf_tiny.py OUT_DIR")
    torch.use_deterministic_algorithms(True)
    for name in MODELS:
        write_model(sys.argv[1], name)
        print("wrote", os.path.join(sys.argv[1], name))


if __name__ == "__main__":
    main()
