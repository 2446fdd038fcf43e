"""Runs the probe (the measurement) or the static check (the prediction) on every zoo model under
every profile, appending one CSV row per (model, profile). Resumable: pairs already in the CSV are
skipped. Standard library only.
  /usr/bin/python3 scripts/validation/measure.py probe  OUT_DIR [-j N]   -> OUT_DIR/measured.csv
  /usr/bin/python3 scripts/validation/measure.py static OUT_DIR [-j N]   -> OUT_DIR/static.csv
  /usr/bin/python3 scripts/validation/measure.py committed OUT_DIR       -> OUT_DIR/measured.csv
  (committed: no probe runs; the measurement columns of docs/validation/study.csv, for a study
  that re-runs only the static side over the committed measurements: run_study.sh --static-only)
  /usr/bin/python3 scripts/validation/measure.py reproduce OUT_DIR [-j N] [--every K]
  (reproduce: re-probes every K-th committed row (default 25) that was measured, not copied, and
  compares it field by field with docs/validation/study.csv; exit 1 on any difference: shows
  that a changed engine still measures the committed study)
  (--bin PATH: another fusecheck binary than OUT_DIR/fusecheck; --rerun-same-plan: probe a profile
  whose plan equals an earlier one's instead of copying its rows, see same_plan_as; --copy-only:
  no probe runs, only those copies)
OUT_DIR holds zoo.csv, models/ and the private fusecheck binary (run_study.sh makes them)."""
import csv, json, os, subprocess, sys, threading
from concurrent.futures import ThreadPoolExecutor

PROFILES = ["generic", "fused", "fused-fp16acc", "fused-fp16kv", "fused-int8kv",
            "fused-int8kv-channel", "fused-fp8kv"]
# Work order: profile by profile, the lossy KV caches first (the rules hinge on them), generic
# last (it runs the same fused plan as fused).
ORDER = ["fused", "fused-int8kv", "fused-int8kv-channel", "fused-fp8kv", "fused-fp16kv",
         "fused-fp16acc", "generic"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEASURED = ["model", "profile", "measured_verdict", "std_kl", "fused_kl", "fused_vs_std_kl",
            "std_top1", "fused_top1", "positions"]
# The static figures the rules read (check JSON, analysis and score), see docs/ANALYSIS.md.
STATIC = ["model", "profile", "static_verdict", "static_score", "amplification",
          "rounding_amplification", "cache_amplification", "key_cache_loss", "depth_key_loss",
          "depth_rounding_amplification", "floor_key_loss", "model_unit_roundoff", "num_layers",
          "has_qk_norm", "k_proj_layers_read", "accumulation_amplification",
          "depth_accumulation_amplification", "floor_accumulation_loss"]


def same_plan_as():
    """profile -> an earlier profile in ORDER with the same kernel plan and numerics in
    data/kernels.json (every field but name, description and static_rules). The probe runs only
    the plan and is deterministic, so such a profile measures what that one measured: its rows are
    copied, not re-run (generic and fused: the same plan; docs/VALIDATION.md shows the check)."""
    profiles = {p["name"]: p for p in json.load(open(os.path.join(ROOT, "data/kernels.json")))["profiles"]}
    plan = lambda p: {k: v for k, v in profiles[p].items() if k not in ("name", "description", "static_rules")}
    alias = {}
    for i, p in enumerate(ORDER):
        for q in ORDER[:i]:
            if q not in alias and plan(p) == plan(q):
                alias[p] = q
                break
    return alias


def model_dir(out, row):
    if row["source"] == "path":
        return os.path.join(ROOT, row["path"])
    return os.path.join(out, "models", row["model"])


def probe(binary, d, prof, tokens=64):
    """The probe's measurement columns (MEASURED[2:]); tokens: per calibration sequence (the study
    measures 4 x 64; calibration_noise.py others)."""
    r = subprocess.run(["nice", "-n", "10", binary, "probe", d, "--kernels", prof, "--no-cache",
                        "--json", "--tokens", str(tokens), "--greedy-tokens", "0"],
                       capture_output=True, text=True)
    if r.returncode not in (0, 2):
        raise RuntimeError(f"probe {d} {prof}: exit {r.returncode}: {r.stderr.strip()}")
    j = json.loads(r.stdout)
    return [j["verdict"], j["standard_vs_fp32"]["kl_mean"], j["fused_vs_fp32"]["kl_mean"],
            j["fused_vs_standard"]["kl_mean"], j["standard_vs_fp32"]["top1_agreement"],
            j["fused_vs_fp32"]["top1_agreement"], j["positions"]]


def static(binary, d, prof):
    r = subprocess.run([binary, "check", d, "--kernels", prof, "--no-cache", "--format", "json"],
                       capture_output=True, text=True)
    if r.returncode not in (0, 1, 2):
        raise RuntimeError(f"check {d} {prof}: exit {r.returncode}: {r.stderr.strip()}")
    j = json.loads(r.stdout)
    a = j["analysis"]
    return [j["verdict"], round(j["score"]["total"], 4)] + [
        round(a[k], 4) for k in ("amplification", "rounding_amplification", "cache_amplification",
                                 "key_cache_loss", "depth_key_loss", "depth_rounding_amplification",
                                 "floor_key_loss")
    ] + [f'{a["model_unit_roundoff"]:.6g}', a["num_layers"], int(any(l["has_qk_norm"] for l in a["layers"])),
         a["k_proj"]["layers_read"]] + [
        round(a[k], 4) for k in ("accumulation_amplification", "depth_accumulation_amplification",
                                 "floor_accumulation_loss")]


def committed(out):
    """OUT_DIR/measured.csv from the committed study (docs/validation/study.csv): the probe is
    deterministic, so a binary whose probe and kernels are unchanged measures the same rows."""
    src = os.path.join(ROOT, "docs/validation/study.csv")
    with open(os.path.join(out, "measured.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(MEASURED)
        n = 0
        for r in csv.DictReader(open(src)):
            w.writerow([r[k] for k in MEASURED])
            n += 1
    print(f"{out}/measured.csv: {n} rows from {src}", file=sys.stderr)


def reproduce(out, binary, jobs, every):
    """Re-measures a sample of the committed study with `binary`; returns the number of rows that
    differ. The CSV holds the probe's JSON numbers as Python prints them, so equal means equal."""
    alias = same_plan_as()
    zoo = {z["model"]: z for z in csv.DictReader(open(os.path.join(out, "zoo.csv")))}
    rows = [r for r in csv.DictReader(open(os.path.join(ROOT, "docs/validation/study.csv")))
            if r["profile"] not in alias]
    sample = rows[::every]

    def one(r):
        got = [str(v) for v in probe(binary, model_dir(out, zoo[r["model"]]), r["profile"])]
        want = [r[k] for k in MEASURED[2:]]
        return r["model"], r["profile"], got, want

    bad = 0
    with ThreadPoolExecutor(jobs) as ex:
        for model, prof, got, want in ex.map(one, sample):
            if got != want:
                bad += 1
                print(f"differs: {model} {prof}: {got} against committed {want}", file=sys.stderr)
    print(f"reproduce: {len(sample) - bad} of {len(sample)} sampled rows (every {every}th of "
          f"{len(rows)} measured) equal the committed study", file=sys.stderr)
    return bad


def main():
    mode, out = sys.argv[1], sys.argv[2]
    if mode == "committed":
        return committed(out)
    jobs = int(sys.argv[sys.argv.index("-j") + 1]) if "-j" in sys.argv else 1
    binary = sys.argv[sys.argv.index("--bin") + 1] if "--bin" in sys.argv else os.path.join(out, "fusecheck")
    if mode == "reproduce":
        every = int(sys.argv[sys.argv.index("--every") + 1]) if "--every" in sys.argv else 25
        return 1 if reproduce(out, binary, jobs, every) else 0
    fields, fn = (MEASURED, probe) if mode == "probe" else (STATIC, static)
    path = os.path.join(out, "measured.csv" if mode == "probe" else "static.csv")
    zoo = list(csv.DictReader(open(os.path.join(out, "zoo.csv"))))
    done = set()
    if os.path.exists(path):
        done = {(r["model"], r["profile"]) for r in csv.DictReader(open(path))}
    else:
        with open(path, "w", newline="") as f:
            csv.writer(f).writerow(fields)
    lock = threading.Lock()
    alias = same_plan_as() if mode == "probe" and "--rerun-same-plan" not in sys.argv else {}
    todo = [(z, p) for p in ORDER for z in zoo if (z["model"], p) not in done and p not in alias]
    if "--copy-only" in sys.argv:  # only the same-plan copies (a run stopped part-way)
        todo = []

    def one(item):
        z, p = item
        row = [z["model"], p] + fn(binary, model_dir(out, z), p)
        with lock, open(path, "a", newline="") as f:
            csv.writer(f).writerow(row)

    with ThreadPoolExecutor(jobs) as ex:
        for _ in ex.map(one, todo):
            pass
    copied = 0
    if alias:
        rows = {(r["model"], r["profile"]): r for r in csv.DictReader(open(path))}
        with open(path, "a", newline="") as f:
            for p, q in alias.items():
                for z in zoo:
                    if (z["model"], p) not in rows and (z["model"], q) in rows:
                        r = dict(rows[(z["model"], q)], profile=p)
                        csv.writer(f).writerow([r[k] for k in fields])
                        copied += 1
    print(f"{path}: {len(todo)} new rows, {copied} copied from a profile with the same plan "
          f"({alias})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
