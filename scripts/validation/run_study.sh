#!/usr/bin/env bash
# The validation study behind docs/VALIDATION.md: the static check and the probe on a zoo of
# checkpoints under every kernel profile, one CSV row per (model, profile).
#   scripts/validation/run_study.sh [OUT_DIR]      (default build/validation)
# Needs build/fusecheck and ../shared (the transformers-made checkpoints and stories260K).
# Then: /usr/bin/python3 scripts/validation/summarize.py OUT_DIR/study.csv > tables.md
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-$root/build/validation}"
shared="$root/../shared"
mkdir -p "$out/models"
# A private copy of the binary, so a rebuild during the (long) run cannot break it.
cp "$root/build/fusecheck" "$out/fusecheck"
bin="$out/fusecheck"
export XDG_CACHE_HOME="$out/cache"   # keep the study out of the user's cache

models=()
for m in qwen3-tiny llama-tiny qwen2-tiny; do models+=("$m=$shared/testdata/hf/$m/bf16"); done
models+=("stories260K=$shared/models/stories260K/hf")
models+=("qwen3-tiny-extreme=$root/tests/data/hf/qwen3-tiny-extreme/bf16")
# Qwen3-0.6B-shaped fixtures (test widths, 28 layers) with the k_norm maximum of layers 0-3 swept,
# plain and with a compensating q_norm (exact logits unchanged), and the published statistics.
for v in 1 2 4 8 16 32 64 96.5 128; do
  for comp in plain comp; do
    dir="$out/models/kmax-$v-$comp"
    flags=(--profile qwen3-0.6b --tiny --force --k-norm-max "0=$v,1=$v,2=$v,3=$v")
    [ "$comp" = comp ] && flags+=(--compensate-q)
    "$bin" fixture "$dir" "${flags[@]}" >/dev/null
    models+=("kmax-$v-$comp=$dir")
  done
done
"$bin" fixture "$out/models/qwen3-0.6b-extreme" --profile qwen3-0.6b-extreme --tiny --force >/dev/null
models+=("qwen3-0.6b-extreme-fixture=$out/models/qwen3-0.6b-extreme")

profiles=(generic fused fused-fp16acc fused-fp16kv fused-int8kv fused-int8kv-channel fused-fp8kv)
csv="$out/study.csv"
# Resumable: models that already have every profile's row are skipped.
[ -f "$csv" ] || echo "model,profile,static_verdict,static_score,predicted_amplification,measured_verdict,std_kl,fused_kl,fused_vs_std_kl,std_top1,fused_top1,positions" >"$csv"
for entry in "${models[@]}"; do
  name="${entry%%=*}" dir="${entry#*=}"
  if [ "$(grep -c "^$name," "$csv" || true)" -ge "${#profiles[@]}" ]; then continue; fi
  sed -i "/^$name,/d" "$csv"
  for p in "${profiles[@]}"; do
    c=$("$bin" check "$dir" --kernels "$p" --no-cache --format json || true)
    r=$("$bin" probe "$dir" --kernels "$p" --no-cache --json --tokens 64 --greedy-tokens 0 || true)
    /usr/bin/python3 - "$name" "$p" "$c" "$r" >>"$csv" <<'PY'
import json, sys
name, prof, c, r = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
print(",".join(str(x) for x in [name, prof, c["verdict"], round(c["score"]["total"], 4),
      round(c["analysis"]["amplification"], 4), r["verdict"], r["standard_vs_fp32"]["kl_mean"],
      r["fused_vs_fp32"]["kl_mean"], r["fused_vs_standard"]["kl_mean"],
      r["standard_vs_fp32"]["top1_agreement"], r["fused_vs_fp32"]["top1_agreement"], r["positions"]]))
PY
  done
  echo "done: $name" >&2
done
echo "$csv"
