"""Fits the static rules on the fit part of the zoo and reports them on the held-out part.
Usage: /usr/bin/python3 scripts/validation/fit.py OUT_DIR > tables.md
Reads OUT_DIR/zoo.csv, measured.csv (the probe) and static.csv (the check with the committed
data/kernels.json); writes OUT_DIR/study.csv (the three joined), OUT_DIR/heldout.csv (its held-out
rows) and OUT_DIR/fit.json (the rules fitted here), and prints Markdown for docs/VALIDATION.md.
Standard library only.

The fit, per profile, uses only rows of the fit part (docs/VALIDATION.md gives the reasons):
- warning thresholds: just below the smallest figure of a measured-INCOMPATIBLE fit model (so no
  fit model is missed), times MARGIN_WARN;
- incompatible thresholds: just above the largest figure of a measured-COMPATIBLE fit model (so no
  fit model is a hard false positive), times MARGIN_INC.
Which figure each profile's rules read is fixed in FORMS below, chosen from what the figures mean
(docs/ANALYSIS.md), not searched over."""
import csv, json, math, os, sys
from collections import defaultdict

MARGIN_WARN, MARGIN_INC = 0.8, 1.25
# profile -> [(rule key, figure column)]
FORMS = {
    "generic": [],
    "fused": [],
    "fused-fp16acc": [("warning_above_floor_accumulation", "floor_accumulation_loss")],
    "fused-fp16kv": [],
    "fused-int8kv": [("incompatible_above_depth_key_loss", "depth_key_loss"),
                     ("warning_above_floor_key_loss", "floor_key_loss")],
    "fused-int8kv-channel": [("warning_above_depth_key_loss", "depth_key_loss")],
    "fused-fp8kv": [("incompatible_above_depth_key_loss", "depth_key_loss"),
                    ("warning_above_floor_key_loss", "floor_key_loss")],
}
# Why these figures (docs/ANALYSIS.md, 4.13-4.14): INCOMPATIBLE reads the cache's own loss
# (depth_key_loss): above every compatible fit model's, whatever the floor. WARNING reads the loss
# against the standard path's floor at the model's dtype (floor_key_loss): the probe charges a
# lossy profile only what it adds above the standard path, and an f16 checkpoint's floor is 64x
# lower in KL than bf16's. Per-channel int8 keeps depth_key_loss for WARNING: its failures in the
# fit part that set the threshold are bf16 models (equal figures), so the floor cannot help.
# fp16 accumulation (fused-fp16acc) reads floor_accumulation_loss for WARNING (docs/ANALYSIS.md
# 4.15): what an fp16 accumulator's rounding of the partial sums of q.k adds to the logits, from
# the q/k gains and head_dim, accumulated over depth like the key loss and set against the model
# dtype's floor like floor_key_loss (the accumulator rounds at 2^-11: a bf16 checkpoint's own
# rounding hides it, an f16 one's does not). No INCOMPATIBLE rule: its one failing fit model
# fails for reasons of its own (its standard path is 0.54 nats from fp32).
# Rules that are not thresholds: the score alone (the original max-gain screen) gives nothing
# worse than COMPATIBLE for a kernel-specific profile; its verdict comes from the fitted figures.
# Lossless profiles: fused measured closer to fp32 than standard on every model it failed by
# top-1 only. Lossy profiles: on the fit part the score's warnings caught no failure the fitted
# rules missed, and added false alarms (int8 per channel 1, fp8 2; docs/VALIDATION.md).
# NaN/Inf and fp16-overflow findings still force INCOMPATIBLE.
FIXED = {p: {"worst": "COMPATIBLE"} for p in ("fused", "fused-fp16acc", "fused-fp16kv",
                                              "fused-int8kv", "fused-int8kv-channel",
                                              "fused-fp8kv")}
LOSSLESS = ["fused", "fused-fp16acc", "fused-fp16kv"]
VERDICTS = ["COMPATIBLE", "WARNING", "INCOMPATIBLE"]

out = sys.argv[1]
zoo = {r["model"]: r for r in csv.DictReader(open(os.path.join(out, "zoo.csv")))}
meas = {(r["model"], r["profile"]): r for r in csv.DictReader(open(os.path.join(out, "measured.csv")))}
stat = {(r["model"], r["profile"]): r for r in csv.DictReader(open(os.path.join(out, "static.csv")))}
rows = []
for key, m in meas.items():
    if key not in stat or key[0] not in zoo:
        continue
    r = dict(zoo[key[0]])
    r.update(stat[key])
    r.update(m)
    rows.append(r)
rows.sort(key=lambda r: (r["split"], r["family"], r["model"], list(FORMS).index(r["profile"])))
fields = list(rows[0].keys())
for name, part in (("study.csv", rows), ("heldout.csv", [r for r in rows if r["split"] == "heldout"])):
    with open(os.path.join(out, name), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(part)


def fig(r, col):
    return float(r[col])


def fit_rules(profile):
    fit = [r for r in rows if r["profile"] == profile and r["split"] == "fit"]
    rules = {}
    for key, col in FORMS[profile]:
        bad = [fig(r, col) for r in fit if r["measured_verdict"] == "INCOMPATIBLE"]
        good = [fig(r, col) for r in fit if r["measured_verdict"] == "COMPATIBLE"]
        if key.startswith("warning"):
            rules[key] = round(min(bad) * MARGIN_WARN, 2) if bad else 0
        else:
            rules[key] = round(max(good) * MARGIN_INC, 2) if good else 0
    return rules


fitted = {p: fit_rules(p) for p in FORMS}
json.dump({p: r for p, r in fitted.items() if r}, open(os.path.join(out, "fit.json"), "w"), indent=1)
fitted = {p: dict(fitted[p], **FIXED.get(p, {})) for p in FORMS}
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
committed = {p["name"]: p.get("static_rules", {})
             for p in json.load(open(os.path.join(root, "data/kernels.json")))["profiles"]}


def matrix(part, profile):
    m = defaultdict(int)
    for r in part:
        if r["profile"] == profile:
            m[(r["static_verdict"], r["measured_verdict"])] += 1
    return m


def rates(m):
    comp = sum(m[(s, "COMPATIBLE")] for s in VERDICTS)
    inc = sum(m[(s, "INCOMPATIBLE")] for s in VERDICTS)
    hard = m[("INCOMPATIBLE", "COMPATIBLE")]
    soft = m[("WARNING", "COMPATIBLE")]
    fn = m[("COMPATIBLE", "INCOMPATIBLE")]
    pct = lambda a, b: f"{100 * a / b:.1f}%" if b else "-"
    return comp, inc, hard, soft, fn, pct(hard, comp), pct(soft, comp)


print("## Fitted rules (fit part) and committed rules (data/kernels.json)\n")
print("| profile | fitted on the fit part | in data/kernels.json |")
print("|---|---|---|")
for p in FORMS:
    c = {k: v for k, v in committed.get(p, {}).items() if k in dict(FORMS[p]) or not FORMS[p]}
    print(f"| {p} | {json.dumps(fitted[p]) if fitted[p] else '-'} | {json.dumps(committed.get(p, {})) or '-'} |")

for part_name in ("heldout", "fit"):
    part = [r for r in rows if r["split"] == part_name]
    n_models = len({r["model"] for r in part})
    print(f"\n## Confusion matrices, {part_name} part ({n_models} models)\n")
    print("| profile | static \\ measured: C→C | W→C | I→C | C→I | W→I | I→I | hard FP | soft FP | FN |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for p in FORMS:
        m = matrix(part, p)
        comp, inc, hard, soft, fn, hp, sp = rates(m)
        print(f"| {p} | {m[('COMPATIBLE','COMPATIBLE')]} | {m[('WARNING','COMPATIBLE')]} | "
              f"{m[('INCOMPATIBLE','COMPATIBLE')]} | {m[('COMPATIBLE','INCOMPATIBLE')]} | "
              f"{m[('WARNING','INCOMPATIBLE')]} | {m[('INCOMPATIBLE','INCOMPATIBLE')]} | "
              f"{hard}/{comp} ({hp}) | {soft}/{comp} ({sp}) | {fn} |")
    missed = [f"{r['model']} ({r['profile']})" for r in part if r["static_verdict"] == "COMPATIBLE"
              and r["measured_verdict"] == "INCOMPATIBLE" and r["profile"] != "generic"]
    if missed:
        print(f"\nFalse negatives: {', '.join(missed)}")
    # Lossless profiles: warnings where fused measured closer to fp32 than standard.
    closer = [r for r in part if r["profile"] in LOSSLESS and r["static_verdict"] != "COMPATIBLE"
              and float(r["fused_kl"]) < float(r["std_kl"])]
    print(f"\nLossless profiles warned although fused measured closer to fp32 (mean KL) than "
          f"standard: {len(closer)}" + (": " + ", ".join(f"{r['model']} ({r['profile']})" for r in closer)
                                       if closer else ""))
    top1_only = [r for r in part if r["measured_verdict"] == "INCOMPATIBLE"
                 and float(r["fused_kl"]) - float(r["std_kl"]) <= (0 if r["profile"] == "fused" else 1e-3)
                 and r["profile"] in ("generic", "fused")]
    print(f"\nLossless profiles measured INCOMPATIBLE on top-1 agreement alone (mean KL closer to "
          f"fp32 than standard): {len(top1_only)}" +
          (": " + ", ".join(f"{r['model']} ({r['profile']}, top-1 {100*float(r['fused_top1']):.1f}% "
                            f"vs {100*float(r['std_top1']):.1f}%)" for r in top1_only) if top1_only else ""))
