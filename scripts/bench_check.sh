#!/usr/bin/env bash
# Wall time of `fusecheck check` as a fresh process with a warm page cache (docs/PERFORMANCE.md).
# Makes the fixtures once under ${BENCH_DIR:-build/bench}, then times each with hyperfine.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${FUSECHECK:-build/fusecheck}
dir=${BENCH_DIR:-build/bench}
command -v hyperfine >/dev/null || {
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q hyperfine
}
mkdir -p "$dir"
[ -f "$dir/qwen3-0.6b/model.safetensors" ] || "$bin" fixture "$dir/qwen3-0.6b" --profile qwen3-0.6b --force
[ -f "$dir/qwen3-235b-a22b/model.safetensors.index.json" ] ||
  "$bin" fixture "$dir/qwen3-235b-a22b" --profile qwen3-235b-a22b --sparse --force
for m in qwen3-0.6b qwen3-235b-a22b; do
  hyperfine -N --warmup 5 --runs ${RUNS:-50} --export-json "$dir/$m.hyperfine.json" \
    "$bin check $dir/$m --no-cache --format json" -i
  /usr/bin/time -f "$m: peak RSS %M KiB" "$bin" check "$dir/$m" --no-cache >/dev/null || true
done
ls -l "$bin" | awk '{print "binary size:", $5, "bytes"}'
