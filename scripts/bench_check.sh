#!/usr/bin/env bash
# Wall time of `fusecheck check` as a fresh process with a warm page cache (docs/PERFORMANCE.md).
# Makes the fixtures once under ${BENCH_DIR:-build/bench}, then times each with hyperfine and
# prints the median of RUNS (default 50) runs after 5 warm-ups.
#   BASELINE=/path/to/older/fusecheck  also times that binary in the same hyperfine run, side by
#                                      side (before/after on the same machine state)
#   FUSECHECK=/path/to/fusecheck       the binary under test (default build/fusecheck)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${FUSECHECK:-build/fusecheck}
base=${BASELINE:-}
dir=${BENCH_DIR:-build/bench}
runs=${RUNS:-50}
command -v hyperfine >/dev/null || {
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q hyperfine
}
mkdir -p "$dir"
[ -f "$dir/qwen3-0.6b/model.safetensors" ] || "$bin" fixture "$dir/qwen3-0.6b" --profile qwen3-0.6b --force
[ -f "$dir/qwen3-235b-a22b/model.safetensors.index.json" ] ||
  "$bin" fixture "$dir/qwen3-235b-a22b" --profile qwen3-235b-a22b --sparse --force
median() {  # hyperfine JSON -> "command: median ms (user, sys)"
  python3 -c '
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("  %-70s median %7.2f ms  (user %.2f ms, sys %.2f ms)" % (
        r["command"], 1000 * r["median"], 1000 * r["user"], 1000 * r["system"]))' "$1"
}
# The floor: exec of a static C program that prints one line (the kernel's exec, mmap and exit on
# this machine), when a C compiler is at hand.
floor=""
if command -v cc >/dev/null && [ ! -x "$dir/hello-static" ]; then
  printf '#include <stdio.h>\nint main(void) { puts("fusecheck"); return 0; }\n' >"$dir/hello.c"
  cc -O2 -static "$dir/hello.c" -o "$dir/hello-static" 2>/dev/null || true
fi
[ -x "$dir/hello-static" ] && floor="$dir/hello-static"
# Process start alone, for reference: what no check can go below.
hyperfine -N --warmup 5 --runs "$runs" --export-json "$dir/version.hyperfine.json" \
  ${floor:+"$floor"} ${base:+"$base --version"} "$bin --version" >/dev/null
echo "process start (static hello, fusecheck --version):"; median "$dir/version.hyperfine.json"
for m in qwen3-0.6b qwen3-235b-a22b; do
  # -i: check exits 1 or 2 for WARNING/INCOMPATIBLE, which is not a failure here.
  hyperfine -N -i --warmup 5 --runs "$runs" --export-json "$dir/$m.hyperfine.json" \
    ${base:+"$base check $dir/$m --no-cache --format json"} \
    "$bin check $dir/$m --no-cache --format json" >/dev/null
  echo "$m:"; median "$dir/$m.hyperfine.json"
  /usr/bin/time -f "  peak RSS %M KiB" "$bin" check "$dir/$m" --no-cache >/dev/null || true
done
ls -l "$bin" | awk '{print "binary size:", $5, "bytes"}'
