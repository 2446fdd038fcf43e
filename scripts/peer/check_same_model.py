#!/usr/bin/python3
"""Checks that fusecheck and the llama.cpp peer compute the same model: the logits of the last
prompt position (fusecheck eval vs scripts/peer/greedy.c over the GGUF) and the greedy
continuations. The engines round differently (llama.cpp's CPU matmul rounds activations to bf16;
fusecheck's standard path keeps them fp32 in the dot product), so the logits agree closely, not
bit for bit. Exits 1 when the agreement is worse than the limits below.

Usage: check_same_model.py FUSECHECK MODEL_DIR LLAMA_GREEDY GGUF [IDS [DOT]]
DOT: fusecheck's --dot choice (default contract; bf16-pairs is llama.cpp's arithmetic).
"""
import json
import struct
import subprocess
import sys
import tempfile

import numpy as np

MIN_CORR = 0.999  # Pearson correlation of the two logit rows
MIN_TOP10 = 8  # of the top 10 ids, shared


def read_logits(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        h = json.loads(f.read(n))
        info = h["logits"]
        b, e = info["data_offsets"]
        f.seek(8 + n + b)
        return np.frombuffer(f.read(e - b), dtype=np.float32).reshape(info["shape"])


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__.split("Usage: ")[1])
    fc, model, greedy, gguf = sys.argv[1:5]
    ids = sys.argv[5] if len(sys.argv) > 5 else "1,403,407,261,378,1000,20000,4242,77,151000"
    dot = ["--dot", sys.argv[6]] if len(sys.argv) > 6 else []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([fc, "eval", model, "--token-ids", ids, "--out", f"{tmp}/fc.safetensors"]
                       + dot, check=True, capture_output=True)
        ours = read_logits(f"{tmp}/fc.safetensors")[-1].astype(np.float64)
        r = subprocess.run([greedy, gguf, "2", "16", ids, f"{tmp}/ll.bin"], check=True,
                           capture_output=True, text=True)
        theirs = np.fromfile(f"{tmp}/ll.bin", dtype=np.float32).astype(np.float64)
        g = subprocess.run([fc, "generate", model, "--token-ids", ids, "-n", "16",
                            "--temperature", "0", "--json"] + dot, check=True, capture_output=True,
                           text=True)
    ll_greedy = [int(t) for t in r.stdout.split("greedy:")[1].split()]
    fc_greedy = json.loads(g.stdout.splitlines()[0])["token_ids"]
    if ours.shape != theirs.shape:
        sys.exit(f"vocab differs: {ours.shape} vs {theirs.shape}")
    corr = float(np.corrcoef(ours, theirs)[0, 1])
    diff = np.abs(ours - theirs)
    top = lambda v: [int(i) for i in np.argsort(-v)[:10]]
    shared = len(set(top(ours)) & set(top(theirs)))
    print(json.dumps({
        "prompt_ids": ids, "dot": dot[1] if dot else "contract", "logits_std": float(ours.std()), "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()), "pearson": corr, "top1_equal": top(ours)[0] == top(theirs)[0],
        "top10_shared": shared, "greedy_fusecheck": fc_greedy, "greedy_llamacpp": ll_greedy,
        "greedy_equal_prefix": next((i for i, (a, b) in enumerate(zip(fc_greedy, ll_greedy)) if a != b),
                                    min(len(fc_greedy), len(ll_greedy)))}, indent=1))
    if corr < MIN_CORR or shared < MIN_TOP10 or top(ours)[0] != top(theirs)[0]:
        print("the two engines disagree", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
