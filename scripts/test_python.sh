#!/usr/bin/env bash
# The Python package's tests (docs/PYTHON.md), as `make test` runs them: builds and installs the
# package with pip, offline, into a fresh venv on Debian's /usr/bin/python3 (system site packages:
# scikit-build-core, pytest and torch come from Debian), then runs tests/python with pytest.
# pip's build reuses BUILD (configured with -DFUSECHECK_PYTHON=ON), so it compiles only the module.
#   scripts/test_python.sh [BUILD]        (default build; the venv goes to BUILD/venv)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
venv="$build/venv"
py=/usr/bin/python3
[ -x "$build/fusecheck" ] || { echo "test_python: $build/fusecheck not built" >&2; exit 1; }
rm -rf "$venv"
"$py" -m venv --system-site-packages "$venv"
PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --no-build-isolation \
  --no-deps -q . --config-settings=build-dir="$build" \
  --config-settings=cmake.define.Python_EXECUTABLE="$py"
# Not the source tree's python/fusecheck: the installed package is what is tested.
(cd /tmp && "$venv/bin/python" -c "import fusecheck, sys; print('fusecheck', fusecheck.__version__, 'from', fusecheck.__file__)")
set +e
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 FUSECHECK_CLI="$build/fusecheck" FUSECHECK_REQUIRE_TORCH=1 \
  "$venv/bin/python" -m pytest -p no:cacheprovider -ra tests/python ${PYTEST_ARGS:-}
rc=$?
set -e
# pytest's 5 means it collected no test: a broken suite, never a pass.
if [ $rc -eq 5 ]; then echo "test_python: pytest collected no tests" >&2; fi
exit $rc
