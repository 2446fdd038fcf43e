"""How much of a lossy profile's measured verdict is the calibration input's: re-probes the committed
study's lossy rows whose added mean KL (fused_kl - std_kl) lies in a band around the 1e-3 budget
with other calibration sequences, and counts the verdicts that change. Standard library only.
  /usr/bin/python3 scripts/validation/calibration_noise.py OUT_DIR [-j N] [--tokens 48,96]
      [--band 5e-4,2e-3] [--profiles fused-int8kv,fused-int8kv-channel]
OUT_DIR as measure.py's (run_study.sh OUT_DIR --static-only writes the zoo's models into it).
The zoo's fixtures have no tokenizer, so the probe's input is its seeded pseudo-random sequences,
four of --tokens each (src/probe/probe.cpp calibration_inputs): the study measured 4 x 64; another
length draws other sequences from the same generator, and as many positions a sequence."""
import csv, os, sys
from concurrent.futures import ThreadPoolExecutor

from measure import ROOT, model_dir, probe


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def verdict_and_added_kl(binary, d, prof, tokens):
    verdict, std_kl, fused_kl = probe(binary, d, prof, tokens)[:3]
    return verdict, fused_kl - std_kl


def main():
    out = sys.argv[1]
    jobs = int(arg("-j", "1"))
    lengths = [int(t) for t in arg("--tokens", "48,96").split(",")]
    lo, hi = (float(x) for x in arg("--band", "5e-4,2e-3").split(","))
    profiles = arg("--profiles", "fused-int8kv,fused-int8kv-channel").split(",")
    binary = arg("--bin", os.path.join(out, "fusecheck"))
    zoo = {z["model"]: z for z in csv.DictReader(open(os.path.join(out, "zoo.csv")))}
    rows = [r for r in csv.DictReader(open(os.path.join(ROOT, "docs/validation/study.csv")))
            if r["profile"] in profiles and lo <= float(r["fused_kl"]) - float(r["std_kl"]) <= hi]
    rows.sort(key=lambda r: float(r["fused_kl"]) - float(r["std_kl"]))

    def one(r):
        d = model_dir(out, zoo[r["model"]])
        return r, [verdict_and_added_kl(binary, d, r["profile"], t) for t in lengths]

    flips = [0] * len(lengths)
    print("| model | profile | dtype | layers | 4 x 64: added KL, verdict | "
          + " | ".join(f"4 x {t}" for t in lengths) + " |")
    print("|---|---|---|---:|---|" + "---|" * len(lengths))
    with ThreadPoolExecutor(jobs) as ex:
        for r, got in ex.map(one, rows):
            cells = []
            for i, (verdict, added) in enumerate(got):
                flip = verdict != r["measured_verdict"]
                flips[i] += flip
                cells.append(f"{added:+.2e} {verdict[0]}{' (changed)' if flip else ''}")
            base = float(r["fused_kl"]) - float(r["std_kl"])
            print(f"| {r['model']} | {r['profile']} | {r['dtype'] or 'fp32'} | {r['num_layers']} | "
                  f"{base:+.2e} {r['measured_verdict'][0]} | " + " | ".join(cells) + " |", flush=True)
    for t, n in zip(lengths, flips):
        print(f"4 x {t} tokens: {n} of {len(rows)} verdicts differ from the committed 4 x 64")


if __name__ == "__main__":
    sys.exit(main())
