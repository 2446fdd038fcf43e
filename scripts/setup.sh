#!/usr/bin/env bash
# Installs the Debian 12 packages fusecheck builds and tests with. Idempotent: it only calls apt-get
# when something is missing. Runs as root (CI) or through sudo.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config
      nlohmann-json3-dev libsimdjson-dev libcli11-dev libfmt-dev libxxhash-dev
      libpcre2-dev libutf8proc-dev libhwy-dev
      libgtest-dev libbenchmark-dev libsqlite3-dev
      chromium)  # headless, renders the HTML report in its test (tests/test_html.cpp)
# `setup.sh --fuzz`: also clang and its runtimes (libFuzzer, sanitizers) for `make fuzz-smoke`.
[ "${1:-}" = "--fuzz" ] && pkgs+=(clang-14 libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js and npm run the tokenizer oracle (@lenml/tokenizers). Machines that already have a Node.js
# with npm (nodesource's package bundles it) keep theirs; otherwise Debian's are installed.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
