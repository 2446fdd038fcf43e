#!/usr/bin/python3
"""fusecheck bench and llama.cpp's llama-bench side by side in one run, on the same model.

Passes are interleaved (per pass and thread count, the engine that runs first rotates), and
each pass records the 1-minute load average before it: on a shared machine quote the ratios, not
the absolute times. Medians are over --passes (>= 3 recommended). With --busy, one extra process
(a `yes >/dev/null` loop, started and stopped here) keeps a core busy for every pass: the
under-load case. llama.cpp's peer is built as docs/PERFORMANCE.md says (outside git) and its GGUF
written by scripts/peer/fixture_to_gguf.py; --llama-bench/--gguf may be omitted to time fusecheck alone
(e.g. stories260K, which has no GGUF here).

llama-bench -p P -n G times prefill of P tokens and G decoded tokens from an empty context;
fusecheck bench decodes its G tokens after the P-token prompt (attention over P..P+G positions),
so for the 0.6B shape it does ~2% more memory traffic per decoded token than llama-bench measures.

Usage: bench/compare_llamacpp.py --fusecheck build/fusecheck --model-dir DIR
         [--llama-bench BIN --gguf FILE] [--threads 1,2] [--passes 3] [--prompt 128] [--gen 64]
         [--busy] [--dots contract,bf16-pairs] [--baseline OTHER_FUSECHECK] [--json OUT]

--baseline adds a second fusecheck binary (e.g. main's build, before a change) as the engines
baseline[:NAME] for every --dots choice, in the same rotation: an A/B of two builds in one run.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run_fusecheck(a, threads, dot="contract", binary=None):
    cmd = [binary or a.fusecheck, "bench", a.model_dir, "--threads", str(threads), "--prompt-tokens",
           str(a.prompt), "--gen-tokens", str(a.gen), "--repeat", "1", "--json"]
    if dot != "contract":
        cmd += ["--dot", dot]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    j = json.loads(r.stdout)
    return {"prefill": j["prefill_tokens_per_s"], "decode": j["decode_tokens_per_s"],
            "bandwidth_gbs": j["bandwidth_gbs"], "roofline": j["decode_roofline_tokens_per_s"],
            "simd_target": j["simd_target"], "dot": j.get("dot", "contract"),
            "dot_impl": j.get("dot_impl")}


def run_llama(a, threads):
    cmd = [a.llama_bench, "-m", a.gguf, "-p", str(a.prompt), "-n", str(a.gen), "-t", str(threads),
           "-r", "1", "-o", "json"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out = {}
    for t in json.loads(r.stdout):
        key = "prefill" if t["n_prompt"] > 0 else "decode"
        out[key] = t["avg_ts"]
    return out


def median(xs):
    return statistics.median(xs) if xs else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fusecheck", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--llama-bench")
    p.add_argument("--gguf")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--gen", type=int, default=64)
    p.add_argument("--busy", action="store_true", help="keep one core busy (yes >/dev/null)")
    p.add_argument("--dots", default="contract",
                   help="fusecheck's --dot choices to time, comma separated (e.g. "
                        "contract,bf16-pairs); each other than contract is the engine "
                        "fusecheck:NAME")
    p.add_argument("--baseline", help="a second fusecheck binary timed as baseline[:NAME]")
    p.add_argument("--json", help="write every pass and the summary here")
    a = p.parse_args()
    dots = a.dots.split(",")
    engines = ["fusecheck" if d == "contract" else "fusecheck:" + d for d in dots]
    if a.baseline:
        engines += ["baseline" if d == "contract" else "baseline:" + d for d in dots]
    engines += ["llama.cpp"] if a.llama_bench and a.gguf else []
    threads = [int(t) for t in a.threads.split(",")]
    busy = None
    # SIGTERM unwinds through the finally below, so the busy loop never outlives this script.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if a.busy:
        busy = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
    passes = []
    try:
        for i in range(a.passes):
            for t in threads:
                # Who goes first rotates with the pass and the thread count.
                k = (i + t) % len(engines)
                order = engines[k:] + engines[:k]
                for e in order:
                    la = loadavg()
                    if e.startswith(("fusecheck", "baseline")):
                        res = run_fusecheck(a, t, e.split(":")[1] if ":" in e else "contract",
                                            a.baseline if e.startswith("baseline") else None)
                    else:
                        res = run_llama(a, t)
                    res.update(engine=e, threads=t, pass_=i, loadavg=la)
                    passes.append(res)
                    print(f"pass {i} {e:20s} t={t} load {la:5.2f}: prefill {res['prefill']:8.2f} "
                          f"decode {res['decode']:7.2f} tok/s", file=sys.stderr, flush=True)
    finally:
        if busy is not None:
            busy.terminate()
            busy.wait()
    summary = {}
    for t in threads:
        s = {}
        for e in engines:
            rows = [r for r in passes if r["engine"] == e and r["threads"] == t]
            s[e] = {k: median([r[k] for r in rows]) for k in ("prefill", "decode")}
            s[e]["loadavg"] = [r["loadavg"] for r in rows]
        if "llama.cpp" in s:
            for e in engines[:-1]:
                suffix = {"fusecheck": ""}.get(e, "_" + e.replace("fusecheck:", ""))
                for k in ("prefill", "decode"):
                    s[f"{k}_ratio{suffix}"] = s[e][k] / s["llama.cpp"][k]
        if a.baseline:  # this build over the baseline build, per --dots choice
            for d in dots:
                suffix = "" if d == "contract" else "_" + d
                tail = "" if d == "contract" else ":" + d
                for k in ("prefill", "decode"):
                    s[f"{k}_over_baseline{suffix}"] = (s["fusecheck" + tail][k] /
                                                       s["baseline" + tail][k])
        summary[str(t)] = s
    fc = [r for r in passes if r["engine"] == "fusecheck"]
    meta = {"busy_core": a.busy, "passes": a.passes, "prompt": a.prompt, "gen": a.gen,
            "dots": dots,
            "dot_impl": next((r["dot_impl"] for r in passes if r.get("dot_impl")), None),
            "bandwidth_gbs_median": median([r["bandwidth_gbs"] for r in fc]),
            "simd_target": fc[0]["simd_target"] if fc else None, "nproc": os.cpu_count()}
    if fc and len(threads) == 2 and all(str(t) in summary for t in threads):
        lo, hi = str(min(threads)), str(max(threads))
        meta["fusecheck_decode_hi_over_lo_threads"] = (
            summary[hi]["fusecheck"]["decode"] / summary[lo]["fusecheck"]["decode"])
        # Paired per pass: the ratio within a pass cancels load drift between passes.
        pairs = []
        for i in range(a.passes):
            d = {r["threads"]: r["decode"] for r in fc if r["pass_"] == i}
            pairs.append(d[int(hi)] / d[int(lo)])
        meta["fusecheck_decode_hi_over_lo_paired_median"] = median(pairs)
    report = {"meta": meta, "summary": summary, "passes": passes}
    text = json.dumps(report, indent=1)
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, a.json)
    print(json.dumps({"meta": meta, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
