#!/usr/bin/env bash
# Fetches Debian's source packages of simdjson and fmt, the versions installed as libsimdjson-dev
# and libfmt-dev, and unpacks them under DIR (default build/runtime-src), so that CMake can link the
# `fusecheck` program with both statically and with the C++ runtime statically
# (cmake/static_runtime.cmake says why: libstdc++.so's load is most of the check's start-up cost).
# Debian ships neither library as an archive. Nothing is installed and the machine's apt
# configuration is not touched: apt runs with its own lists under DIR/apt. Idempotent; on any
# failure it says so in one line and exits 0, and the build links the shared libraries instead.
set -uo pipefail
dir=${1:-build/runtime-src}
ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }
simdjson_v=$(ver libsimdjson-dev)
fmt_v=$(ver libfmt-dev)
if [ -z "$simdjson_v" ] || [ -z "$fmt_v" ]; then
  echo "runtime-sources: libsimdjson-dev or libfmt-dev is not installed; linking the shared libraries"
  exit 0
fi
mkdir -p "$dir" && dir=$(cd "$dir" && pwd)  # apt reads relative Dir:: paths under /etc/apt
stamp="$dir/versions"
want="simdjson $simdjson_v fmtlib $fmt_v"
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && exit 0
mkdir -p "$dir/apt/lists/partial" "$dir/apt/parts" "$dir/apt/cache/archives/partial" "$dir/download"
: >"$dir/apt/sources.list"  # no sources but ours
# The machine's own Debian mirror (the URIs of its bookworm source), as setup.sh finds it.
uri=$(grep -hs -A3 '^Types: deb' /etc/apt/sources.list.d/*.sources |
      awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
[ -z "$uri" ] && uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' \
                       /etc/apt/sources.list 2>/dev/null || true)
[ -z "$uri" ] && uri=http://deb.debian.org/debian
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-bookworm}")
printf 'Types: deb-src\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: %s\n' \
  "$uri" "$codename" "$codename" /usr/share/keyrings/debian-archive-keyring.gpg \
  >"$dir/apt/parts/debian-src.sources"
apt_opts=(-q -o "Dir::Etc::SourceList=$dir/apt/sources.list" -o "Dir::Etc::SourceParts=$dir/apt/parts"
          -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache"
          -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
log="$dir/apt/log"
fail() {
  echo "runtime-sources: $1 (see $log); linking the shared libraries"
  exit 0
}
apt-get "${apt_opts[@]}" update >"$log" 2>&1 || fail "apt-get update of the Debian source lists failed"
(cd "$dir/download" && apt-get "${apt_opts[@]}" source --download-only \
   "simdjson=$simdjson_v" "fmtlib=$fmt_v") >>"$log" 2>&1 ||
  fail "apt-get source simdjson=$simdjson_v fmtlib=$fmt_v failed"
# The upstream tarballs alone: Debian's patches of these two versions touch only the docs and the
# test build (debian/patches), and CMake compares the unpacked headers with the installed ones.
rm -rf "$dir/simdjson" "$dir/fmt"
mkdir -p "$dir/simdjson" "$dir/fmt"
tar -xzf "$dir"/download/simdjson_*.orig.tar.gz -C "$dir/simdjson" --strip-components=1 ||
  fail "cannot unpack the simdjson source"
tar -xzf "$dir"/download/fmtlib_*.orig.tar.gz -C "$dir/fmt" --strip-components=1 ||
  fail "cannot unpack the fmt source"
echo "$want" >"$stamp"
echo "runtime-sources: simdjson $simdjson_v and fmt $fmt_v sources in $dir"
