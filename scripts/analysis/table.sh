#!/bin/bash
# Per-kernel-profile results for one model directory.
D=${1:-/tmp/docs-fx/x}
for K in generic standard fused fused-fp16acc fused-fp16kv fused-int8kv fused-int8kv-channel fused-fp8kv; do
  ${FUSECHECK:-build/fusecheck} check $D --no-cache --kernels $K --format json > "${TMPDIR:-/tmp}/k-$K.json"
  echo "$K exit=$?"
done
python3 - <<'PY'
import json, os
for K in "generic standard fused fused-fp16acc fused-fp16kv fused-int8kv fused-int8kv-channel fused-fp8kv".split():
    j=json.load(open(f"{os.environ.get('TMPDIR','/tmp')}/k-{K}.json"))
    a=j['analysis']; s=j['score']; l0=a['layers'][0]['noise']
    print(f"| {K} | {j['verdict']} | {s['total']:.3f} | {a['amplification']:.2f} | {a['worst_layer']} | {a['cumulative_amplification']:.2f} | {l0['sigma']:.4f} | {sum(1 for l in a['layers'] if l['noise']['amplification']>j['thresholds']['max_safe_amplification'])} | {[round(c['score'],3) for c in s['components']]} | {len(s['findings'])}")
PY
