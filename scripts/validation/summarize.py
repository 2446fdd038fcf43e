"""Tables for docs/VALIDATION.md from run_study.sh's study.csv (standard library only).
Usage: /usr/bin/python3 scripts/validation/summarize.py build/validation/study.csv"""
import csv, sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1])))
profiles = list(dict.fromkeys(r["profile"] for r in rows))

print("## Static score against measurement\n")
print("| model | profile | static | score | pred. amp. | measured | KL std↔fp32 | KL fused↔fp32 | top-1 std | top-1 fused |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['model']} | {r['profile']} | {r['static_verdict']} | {float(r['static_score']):.2f} | "
          f"{float(r['predicted_amplification']):.3g} | {r['measured_verdict']} | {float(r['std_kl']):.3g} | "
          f"{float(r['fused_kl']):.3g} | {100*float(r['std_top1']):.1f}% | {100*float(r['fused_top1']):.1f}% |")

print("\n## Confusion matrices (rows: static verdict, columns: measured verdict)\n")
for p in profiles:
    m = defaultdict(int)
    for r in rows:
        if r["profile"] == p:
            m[(r["static_verdict"], r["measured_verdict"])] += 1
    print(f"**{p}**\n")
    print("| static \\ measured | COMPATIBLE | INCOMPATIBLE |")
    print("|---|---|---|")
    for s in ("COMPATIBLE", "WARNING", "INCOMPATIBLE"):
        print(f"| {s} | {m[(s, 'COMPATIBLE')]} | {m[(s, 'INCOMPATIBLE')]} |")
    missed = [r["model"] for r in rows if r["profile"] == p and r["static_verdict"] == "COMPATIBLE"
              and r["measured_verdict"] == "INCOMPATIBLE"]
    if missed:
        print(f"\nCalled COMPATIBLE but measured INCOMPATIBLE: {', '.join(missed)}")
    print()
