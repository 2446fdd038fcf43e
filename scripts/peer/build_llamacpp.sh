#!/usr/bin/env bash
# Builds the llama.cpp peer used by bench/compare_llamacpp.sh, reproducibly and outside git:
# node-llama-cpp@3.22.1 ships llama.cpp v0.5.0 as a git bundle; we clone it into $PEER_DIR and build
# CPU-only Release with Ninja (-j2), only llama-bench and libllama (for scripts/peer/greedy.c).
# Nothing here is committed: PEER_DIR defaults to build/peer (git-ignored).
# Usage: scripts/peer/build_llamacpp.sh            (env: PEER_DIR, JOBS)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PEER_DIR="${PEER_DIR:-$ROOT/build/peer}"
JOBS="${JOBS:-2}"
VERSION=3.22.1
mkdir -p "$PEER_DIR"
cd "$PEER_DIR"

if [[ ! -f "node-llama-cpp-$VERSION.tgz" ]]; then
  npm pack "node-llama-cpp@$VERSION" >/dev/null
fi
if [[ ! -d llama.cpp/.git ]]; then
  tar xzf "node-llama-cpp-$VERSION.tgz" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
  git clone -q package/llama/gitRelease.bundle llama.cpp
fi
echo "peer: llama.cpp $(sed -n 's/.*"tag": *"\([^"]*\)".*/\1/p' package/llama/llama.cpp.info.json)" \
  "commit $(git -C llama.cpp rev-parse --short HEAD)"

LAUNCH=()
if command -v ccache >/dev/null; then
  LAUNCH=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
# Native, CPU only; no network (curl), no tests/server/examples. OpenMP is ggml's default threading.
cmake -S llama.cpp -B llama.cpp/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_APP=OFF "${LAUNCH[@]}" >/dev/null
cmake --build llama.cpp/build -j"$JOBS" --target llama-bench llama

# Our own greedy/logits driver over libllama (scripts/peer/greedy.c), for the same-model check.
cc -O2 -std=c11 -I llama.cpp/include -I llama.cpp/ggml/include "$ROOT/scripts/peer/greedy.c" \
  -L llama.cpp/build/bin -lllama -lggml -lggml-base -Wl,-rpath,"$PEER_DIR/llama.cpp/build/bin" \
  -o llama-greedy
echo "peer: built $PEER_DIR/llama.cpp/build/bin/llama-bench and $PEER_DIR/llama-greedy"
