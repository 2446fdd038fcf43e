"""transformers-on-CUDA references for the GPU engine tests (tests/test_gpu_engine.cpp).

Runs on the GPU machine (its python3 holds torch and transformers). Usage:
    python3 hf_reference_cuda.py HF_DIR OUT_DIR    (HF_DIR = tests/data/hf)

For each tiny checkpoint HF_DIR/<name>, on cuda:0 with eager attention, loaded with
from_pretrained as users load them, it writes OUT_DIR/<name>/reference_cuda.{safetensors,json}:
  - logits_fp32.<i>: the fp32 checkpoint in fp32 with TF32 off (matmul and cuDNN), the oracle of
    "fp32 GPU logits within 1e-4 relative";
  - logits_bf16.<i>: the bf16 checkpoint in bf16 (PyTorch's CUDA bf16 kernels), the oracle of
    "bf16 standard logits closer to transformers-CUDA bf16 than its own bf16-vs-fp32 gap";
for reference_ext.json's sequences (the three of reference.json and the 160-token one). The json
records the versions, the device, and transformers' own gaps (CUDA fp32 vs the CPU fp32 logits
committed in reference*.safetensors; CUDA bf16 vs CUDA fp32).
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True  # PyTorch's default


def rel(a, b):
    return float(((a.double() - b.double()).norm() / b.double().norm()).item())


def emit(name, src, dst):
    ext = json.load(open(os.path.join(src, "reference_ext.json")))
    seqs = ext["sequences"]
    cpu_ref = load_file(os.path.join(src, "reference.safetensors"))
    cpu_ref.update(load_file(os.path.join(src, "reference_ext.safetensors")))
    m32 = AutoModelForCausalLM.from_pretrained(os.path.join(src, "fp32"), dtype=torch.float32,
                                               attn_implementation="eager").to("cuda").eval()
    mb = AutoModelForCausalLM.from_pretrained(os.path.join(src, "bf16"), dtype=torch.bfloat16,
                                              attn_implementation="eager").to("cuda").eval()
    out, gaps = {}, {"cuda_fp32_vs_cpu_fp32": [], "cuda_bf16_vs_cuda_fp32": []}
    with torch.no_grad():
        for i, s in enumerate(seqs):
            ids = torch.tensor(s, device="cuda")[None]
            l32 = m32(ids).logits[0].float().cpu().contiguous()
            lb = mb(ids).logits[0].float().cpu().contiguous()
            out[f"logits_fp32.{i}"], out[f"logits_bf16.{i}"] = l32, lb
            key = f"logits_fp32.{i}"
            if key in cpu_ref:
                gaps["cuda_fp32_vs_cpu_fp32"].append(rel(l32, cpu_ref[key]))
            gaps["cuda_bf16_vs_cuda_fp32"].append(rel(lb, l32))
    meta = {"name": name, "made_by": "scripts/reference/hf_reference_cuda.py",
            "transformers": transformers.__version__, "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0), "attn_implementation": "eager",
            "loaded_with": "from_pretrained", "tf32": False, "sequences": seqs, "gaps": gaps}
    os.makedirs(dst, exist_ok=True)
    save_file(out, os.path.join(dst, "reference_cuda.safetensors"))
    with open(os.path.join(dst, "reference_cuda.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return gaps


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: hf_reference_cuda.py HF_DIR OUT_DIR")
    hf, out = sys.argv[1], sys.argv[2]
    for name in ("qwen3-tiny", "llama-tiny", "qwen2-tiny", "qwen3-tiny-extreme"):
        print(name, json.dumps(emit(name, os.path.join(hf, name), os.path.join(out, name))))
