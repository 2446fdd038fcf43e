#!/usr/bin/env python3
"""transformers on the GPU, batch 1, on the same checkpoint `fusecheck bench --device cuda` times.

Prefill of --prompt-tokens random ids, then --gen-tokens greedy decode steps through the KV cache
(a manual loop over model(...) with past_key_values, which is what generate() runs, without its
stopping logic). Median of --repeat timed passes after one warm-up pass; CUDA synchronised around
each timed region. Prints one JSON object. Runs on the GPU machine's own torch/transformers.

    python3 bench/transformers_baseline.py MODEL_DIR [--attn eager|sdpa] [--dtype bf16|fp32]
"""
import argparse
import json
import statistics
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def one_pass(model, ids, gen):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model(input_ids=ids, use_cache=True)
    past = out.past_key_values
    nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    for _ in range(gen):
        out = model(input_ids=nxt, past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    return ids.shape[1] / (t1 - t0), gen / (t2 - t1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"])
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    a = ap.parse_args()
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype, attn_implementation=a.attn)
    model = model.to("cuda").eval()
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, model.config.vocab_size, (1, a.prompt_tokens), generator=g).to("cuda")
    with torch.inference_mode():
        one_pass(model, ids, 2)  # warm-up: kernels chosen, allocator grown
        passes = [one_pass(model, ids, a.gen_tokens) for _ in range(a.repeat)]
    print(json.dumps({
        "engine": f"transformers {transformers.__version__} ({a.attn}), torch {torch.__version__}",
        "device": torch.cuda.get_device_name(0),
        "dtype": a.dtype,
        "prompt_tokens": a.prompt_tokens,
        "gen_tokens": a.gen_tokens,
        "repeat": a.repeat,
        "prefill_tok_s": statistics.median(p[0] for p in passes),
        "decode_tok_s": statistics.median(p[1] for p in passes),
        "decode_tok_s_min_max": [min(p[1] for p in passes), max(p[1] for p in passes)],
    }))


if __name__ == "__main__":
    main()
