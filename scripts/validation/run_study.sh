#!/usr/bin/env bash
# The validation study behind docs/VALIDATION.md, in one command: the zoo (scripts/validation/zoo.py),
# the probe's measurement and the static check's prediction for every model under every kernel
# profile, the fit of the static rules on the fit part, and the confusion matrices on the held-out
# part.
#   scripts/validation/run_study.sh [OUT_DIR] [-j N] [--static-only]   (default build/validation, N = 2)
# --static-only: no probe runs; the measurements are the committed ones (docs/validation/study.csv,
# measure.py committed), and only the static check and the fit are redone: for a change of the
# static figures or rules (under a minute, not the probe sweep's 6 min). Valid while the probe and
# the kernel plans are those that measured the committed rows.
# Needs build/fusecheck and ../shared (the transformers-made checkpoints and stories260K).
# Resumable: the probe and check rows already in OUT_DIR are kept (delete OUT_DIR for a fresh run).
# Writes OUT_DIR/study.csv (every row), OUT_DIR/fit.json (the fitted rules), OUT_DIR/tables.md.
# Run time: see docs/VALIDATION.md ("Reproducing").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$root/build/validation" jobs=2 static_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    -j) jobs="$2"; shift 2 ;;
    --static-only) static_only=1; shift ;;
    *) out="$1"; shift ;;
  esac
done
py=/usr/bin/python3
here="$root/scripts/validation"
mkdir -p "$out/models"
# A private copy of the binary, so a rebuild during the (long) run cannot break it.
cp "$root/build/fusecheck" "$out/fusecheck"
bin="$out/fusecheck"
export XDG_CACHE_HOME="$out/cache"   # keep the study out of the user's cache
start=$(date +%s)

"$py" "$here/zoo.py" "$out"
# The synthetic models (tiny: the probe takes about a second on each).
"$py" - "$out" "$bin" <<'PY'
import csv, os, subprocess, sys
out, binary = sys.argv[1], sys.argv[2]
for z in csv.DictReader(open(os.path.join(out, "zoo.csv"))):
    if z["source"] != "fixture":
        continue
    d = os.path.join(out, "models", z["model"])
    if os.path.exists(os.path.join(d, "config.json")):
        continue
    cmd = [binary, "fixture", d, "--profiles", os.path.join(out, "zoo-fixtures.json"), "--profile",
           z["model"], "--seed", z["seed"], "--dtype", z["dtype"], "--force"]
    if z["compensate_q"] == "1":
        cmd.append("--compensate-q")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
PY
echo "zoo written ($(( $(date +%s) - start )) s)" >&2
if [ "$static_only" = 1 ]; then
  "$py" "$here/measure.py" committed "$out"
else
  "$py" "$here/measure.py" probe "$out" -j "$jobs"
fi
echo "probe done ($(( $(date +%s) - start )) s)" >&2
rm -f "$out/static.csv"   # the prediction is cheap and follows the current rules: always redone
"$py" "$here/measure.py" static "$out" -j "$jobs"
"$py" "$here/fit.py" "$out" >"$out/tables.md"
echo "study done in $(( $(date +%s) - start )) s: $out/study.csv, $out/fit.json, $out/tables.md" >&2
