#!/usr/bin/env bash
# check_all.sh ROOT [fusecheck check args...]
#
# Runs `fusecheck check` on every model directory under ROOT (any directory holding a config.json,
# symlinked Hugging Face cache snapshots included), prints one "VERDICT  DIR" row per model and a
# summary, and exits with the worst exit code seen: 0 COMPATIBLE, 1 WARNING, 2 INCOMPATIBLE,
# 3 ERROR (could not check), or fusecheck's own code when it is higher (64: bad arguments).
# Extra arguments go to every check, e.g.:  check_all.sh ~/models --kernels fused-int8kv --no-cache
# The binary is $FUSECHECK, default build/fusecheck. Reports go to /dev/null; errors to stderr.
set -euo pipefail

usage() {
  echo "usage: check_all.sh ROOT [fusecheck check args...]" >&2
  exit 64
}
[[ $# -ge 1 ]] || usage
root=$1
shift
[[ -d $root ]] || { echo "check_all.sh: $root: not a directory" >&2; usage; }
fusecheck=${FUSECHECK:-build/fusecheck}
[[ -x $fusecheck ]] || { echo "check_all.sh: $fusecheck: not an executable (set FUSECHECK)" >&2; exit 64; }

count=(0 0 0 0)  # models per exit code 0..3
names=(COMPATIBLE WARNING INCOMPATIBLE ERROR)
worst=0
models=0
errfile=$(mktemp)
trap 'rm -f "$errfile"' EXIT

# -print0 / read -d '' keep paths with spaces intact; ! -type d admits config.json symlinks.
while IFS= read -r -d '' config; do
  dir=$(dirname "$config")
  code=0
  "$fusecheck" check "$dir" "$@" >/dev/null 2>"$errfile" || code=$?  # || keeps set -e quiet
  models=$((models + 1))
  if ((code <= 3)); then
    verdict=${names[code]}
    count[code]=$((count[code] + 1))
  else
    verdict="ERROR($code)"
    count[3]=$((count[3] + 1))
  fi
  printf '%-13s %s\n' "$verdict" "$dir"
  # Anything fusecheck said on stderr (errors, cache notes), prefixed with the model it is about.
  while IFS= read -r line; do echo "$dir: $line" >&2; done <"$errfile"
  if ((code > worst)); then worst=$code; fi  # not `((..)) && ..`: under set -e that ends the loop
done < <(find "$root" -name config.json ! -type d -print0 | sort -z)

if ((models == 0)); then
  echo "check_all.sh: no model directories (with a config.json) under $root" >&2
  exit 3
fi
echo "summary: $models models: ${count[0]} COMPATIBLE, ${count[1]} WARNING, ${count[2]} INCOMPATIBLE, ${count[3]} ERROR"
exit "$worst"
