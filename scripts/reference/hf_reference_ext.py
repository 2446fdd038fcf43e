"""Extra transformers references for the engine tests, beside make_hf_tiny.py's.

Runs where torch and transformers are installed (the GPU device image); CPU only, eager attention.
Usage: python3 hf_reference_ext.py HF_DIR     (HF_DIR = make_hf_tiny.py's output, tests/data/hf)

For each tiny checkpoint HF_DIR/<name> it loads the model the way users do,
`from_pretrained(dir, dtype=...)`, and writes HF_DIR/<name>/reference_ext.{safetensors,json}:
  - logits of the bf16 checkpoint loaded as bf16 (reference.safetensors' bf16 logits came from
    `model.to(torch.bfloat16)`, which also casts RoPE's inv_freq buffer to bf16; from_pretrained
    keeps it fp32, which is what users run), for reference.json's sequences plus one long one;
  - the bf16 hidden states after every layer for sequence 1;
  - greedy continuations through the KV cache, bf16 and fp32, including the long sequence.
"""
import json, os, sys
import torch
from safetensors.torch import save_file
import transformers
from transformers import AutoModelForCausalLM

torch.use_deterministic_algorithms(True)
LONG_LEN, LONG_GEN, GEN = 160, 64, 24


def greedy(model, ids, n):
    g = model.generate(torch.tensor(ids)[None], max_new_tokens=n, do_sample=False, use_cache=True,
                       pad_token_id=0, eos_token_id=None)
    return g[0, len(ids):].tolist()


def emit_ext(name, src, dst):
    m32 = AutoModelForCausalLM.from_pretrained(os.path.join(src, "fp32"), dtype=torch.float32,
                                               attn_implementation="eager").eval()
    mb = AutoModelForCausalLM.from_pretrained(os.path.join(src, "bf16"), dtype=torch.bfloat16,
                                              attn_implementation="eager").eval()
    base = json.load(open(os.path.join(src, "reference.json")))
    seqs = list(base["sequences"])
    g = torch.Generator().manual_seed(4242)
    seqs.append(torch.randint(3, m32.config.vocab_size, (LONG_LEN,), generator=g).tolist())
    meta = {"name": name, "transformers": transformers.__version__, "torch": torch.__version__,
            "device": "cpu", "attn_implementation": "eager", "loaded_with": "from_pretrained",
            "inv_freq_dtype_bf16": str(mb.model.rotary_emb.inv_freq.dtype),
            "sequences": seqs, "greedy_bf16": [], "greedy_fp32": []}
    ref = {}
    with torch.no_grad():
        for i, s in enumerate(seqs):
            ob = mb(torch.tensor(s)[None], output_hidden_states=(i == 1))
            ref[f"logits_bf16.{i}"] = ob.logits[0].float().contiguous()
            if i == 1:
                for li, h in enumerate(ob.hidden_states):
                    ref[f"hidden_bf16.1.{li}"] = h[0].float().contiguous()
            meta["greedy_bf16"].append(greedy(mb, s, GEN))
        long = seqs[-1]
        ref[f"logits_fp32.{len(seqs) - 1}"] = m32(torch.tensor(long)[None]).logits[0].float().contiguous()
        for s in seqs[:-1]:
            meta["greedy_fp32"].append(greedy(m32, s, GEN))
        meta["greedy_fp32"].append(greedy(m32, long, LONG_GEN))
    os.makedirs(dst, exist_ok=True)
    save_file(ref, os.path.join(dst, "reference_ext.safetensors"))
    with open(os.path.join(dst, "reference_ext.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: hf_reference_ext.py HF_DIR")
    hf = sys.argv[1]
    for name in ("qwen3-tiny", "llama-tiny", "qwen2-tiny", "qwen3-tiny-extreme"):
        emit_ext(name, os.path.join(hf, name), os.path.join(hf, name))
    print(json.dumps({"inv_freq": {n: json.load(open(os.path.join(hf, n, "reference_ext.json")))["inv_freq_dtype_bf16"]
                                   for n in sorted(os.listdir(hf))}}))
