#!/usr/bin/env bash
# Installs the Debian 12 packages fusecheck builds and tests with. Idempotent: it only calls apt-get
# when something is missing. Runs as root (CI) or through sudo.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config
      nlohmann-json3-dev libsimdjson-dev libcli11-dev libfmt-dev libxxhash-dev
      libpcre2-dev libutf8proc-dev libhwy-dev libedit-dev
      libgtest-dev libbenchmark-dev libsqlite3-dev
      pybind11-dev python3-dev python3-venv python3-pytest python3-torch
      tmux      # the interactive chat test drives a real terminal
      chromium) # headless, renders the HTML report in its test (tests/test_html.cpp)
# `setup.sh --fuzz`: also clang and its runtimes (libFuzzer, sanitizers) for `make fuzz-smoke`.
[ "${1:-}" = "--fuzz" ] && pkgs+=(clang-14 libclang-rt-14-dev)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
# The Python package's build backend; bookworm has it only in backports (installed last, below).
backports=()
installed python3-scikit-build-core || backports+=(python3-scikit-build-core)
# Node.js and npm run the tokenizer oracle (@lenml/tokenizers). Machines that already have a Node.js
# with npm (nodesource's package bundles it) keep theirs; otherwise Debian's are installed.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && [ ${#backports[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]} ${backports[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# python3-scikit-build-core (the Python package's build backend) is only in bookworm-backports: add
# that suite from the machine's own Debian mirror (the URIs of its bookworm source) when missing.
add_backports() {
  grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
  local uri
  uri=$(grep -hs -A3 '^Types: deb' /etc/apt/sources.list.d/*.sources |
        awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
  [ -z "$uri" ] && uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' \
                         /etc/apt/sources.list 2>/dev/null || true)
  [ -z "$uri" ] && uri=http://deb.debian.org/debian
  echo "setup: adding bookworm-backports from $uri"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
    "$uri" /usr/share/keyrings/debian-archive-keyring.gpg |
    $sudo tee /etc/apt/sources.list.d/fusecheck-bookworm-backports.sources >/dev/null
}
[ ${#backports[@]} -gt 0 ] && add_backports
$sudo apt-get update -q
[ ${#missing[@]} -gt 0 ] && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
# -t: its dependencies (python3-packaging >= 25) come from backports too.
[ ${#backports[@]} -gt 0 ] &&
  $sudo apt-get install -y -q --no-install-recommends -t bookworm-backports "${backports[@]}"
exit 0
