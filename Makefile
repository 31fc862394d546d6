# Every target makes (or reuses) its own virtualenv in .venv and installs what it
# needs from requirements/ and this project; nothing is installed by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PYTEST_ARGS ?=
EXT_STAMP := $(VENV)/.ext-built
# wheel-check's scratch output (gitignored under build/).
WHEEL_CHECK_DIR ?= build/wheel-check
# CPython 3.14 and 3.15 from Debian sid's packages, in a debootstrap chroot (make chroot-pythons).
CHROOT ?= build/chroot/sid

.PHONY: help venv build build-trace test test-servers test-compiled test-pure bench bench-publish bench-e2e bench-e2e-instructions bench-instructions lint annotate clean asan asan-build fuzz \
	wheels wheels-test wheel-check chroot-pythons clean-chroot

help:
	@echo "make bench     build, run the benchmarks, print the comparison table (results in build/bench/)"
	@echo "make bench-publish  the README's benchmark table and chart from build/bench/ (benchmarks/README.md)"
	@echo "make test      build, run the test suite compiled, then pure (FASTMW_NO_EXTENSIONS=1)"
	@echo "make bench-e2e end-to-end uvicorn load run"
	@echo "make bench-e2e-instructions  the uvicorn server's instructions per request (callgrind), per stack"
	@echo "make bench-instructions  callgrind instructions per request, fastmw vs references (INSTR_ARGS=--quick)"
	@echo "make lint      ruff + mypy --strict"
	@echo "make annotate  Cython HTML annotation of the core (src/fastmw/_core.html)"
	@echo "make build-trace  in-place core with Cython line tracing (coverage); make build restores"
	@echo "make wheels    sdist + manylinux wheel per CPython 3.10-3.15 (3.14/3.15 in the chroot) + pure wheel, into dist/"
	@echo "make wheels-test  install each dist/ artifact alone in a fresh venv, run the suite on it"
	@echo "make chroot-pythons  CPython 3.14 and 3.15 from Debian sid in a debootstrap chroot under build/ (root)"
	@echo "make wheel-check  default-Python wheel built, checked and tested in isolation (CI)"
	@echo "make asan      core built with ASan+UBSan, core/middleware tests run on it"
	@echo "make fuzz      coverage-guided fuzzing of the core against its pure twin (FUZZ_SECONDS=300)"
	@echo "make clean     remove the venv and build products"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps-test: $(PY) requirements/build.txt requirements/test.txt
	$(PIP) install -q -r requirements/test.txt
	touch $@

$(VENV)/.deps-bench: $(VENV)/.deps-test requirements/bench.txt
	$(PIP) install -q -r requirements/bench.txt
	touch $@

# The bench requirements too: mypy checks benchmarks/ against uvloop and matplotlib.
$(VENV)/.deps-lint: $(VENV)/.deps-bench requirements/lint.txt
	$(PIP) install -q -r requirements/lint.txt
	touch $@

$(VENV)/.deps-wheels: $(VENV)/.deps-test requirements/wheels.txt
	$(PIP) install -q -r requirements/wheels.txt
	touch $@

$(VENV)/.installed: $(VENV)/.deps-test pyproject.toml setup.py
	$(PIP) install -q --no-build-isolation --no-deps -e .
	touch $@

# Rebuild the extension in place whenever the .pyx (or the build) changes.
$(EXT_STAMP): $(VENV)/.installed src/fastmw/_core.pyx $(wildcard src/fastmw/_cy/*.pxi src/fastmw/_cy/*.h) setup.py
	$(PY) setup.py -q build_ext --inplace
	touch $@

venv: $(VENV)/.installed

build: $(EXT_STAMP)

# setup.py records the Cython mode, so switching back and forth regenerates the C;
# dropping the stamp makes the next `make build` put the plain core back.
build-trace: $(VENV)/.installed
	FASTMW_CYTHON_TRACE=1 $(PY) setup.py -q build_ext --inplace
	rm -f $(EXT_STAMP)

# The metrics end-to-end test scrapes with a real Prometheus server, the sink's rotation tests
# run Debian's logrotate (both Debian packages; the rotation tests skip, saying why, without it).
test-servers:
	command -v prometheus || (apt-get update && apt-get install -y prometheus) || echo "prometheus not installed: tests/test_metrics_e2e.py will fail"
	command -v logrotate || test -x /usr/sbin/logrotate || (apt-get update && apt-get install -y logrotate) \
		|| echo "logrotate not installed: the rotation tests skip"

# The pure pass leaves out tests marked `once`: they ran both twins in the compiled pass
# (the `core` fixture's two cores, the benchmarks' pure copy) or depend on neither.
test: build test-servers
	FASTMW_REQUIRE_COMPILED=1 $(PY) -m pytest $(PYTEST_ARGS)
	FASTMW_NO_EXTENSIONS=1 $(PY) -m pytest -m "not once" $(PYTEST_ARGS)

test-compiled: build test-servers
	FASTMW_REQUIRE_COMPILED=1 $(PY) -m pytest $(PYTEST_ARGS)

test-pure: build test-servers
	FASTMW_NO_EXTENSIONS=1 $(PY) -m pytest $(PYTEST_ARGS)

# BENCH_ARGS passes options, e.g. BENCH_ARGS="--quick" or BENCH_ARGS="-k context".
BENCH_ARGS ?=
# The metrics group (benchmarks/metrics_cost.py) compares fastmw with the Prometheus exporters on a FastAPI app.
bench: build $(VENV)/.deps-bench
	$(PY) -m benchmarks $(BENCH_ARGS)
	$(PY) -m benchmarks.metrics_cost --time

# The only way the README's benchmark figures change: from the results of the runs above.
bench-publish: $(VENV)/.deps-bench
	$(PY) -m benchmarks.publish

# wrk comes from Debian; without it (no apt, no root) e2e.py falls back to a Python load generator.
bench-e2e: build $(VENV)/.deps-bench
	command -v wrk || (apt-get update && apt-get install -y wrk) || echo "wrk not installed: using the Python load generator"
	$(PY) -m benchmarks.e2e

# The uvicorn server counted by callgrind (benchmarks/e2e_instructions.py): E2E_INSTR_STACKS picks stacks.
bench-e2e-instructions: build $(VENV)/.deps-bench
	command -v valgrind || (apt-get update && apt-get install -y valgrind)
	$(PY) -m benchmarks.e2e_instructions

# valgrind comes from Debian; instruction counts do not move with the machine's load.
# INSTR_ARGS passes options, e.g. INSTR_ARGS="--quick" or INSTR_ARGS="--groups full context".
INSTR_ARGS ?=
bench-instructions: build $(VENV)/.deps-bench
	command -v valgrind || (apt-get update && apt-get install -y valgrind)
	$(PY) -m benchmarks.instructions $(INSTR_ARGS)
	$(PY) -m benchmarks.trace_cost
	$(PY) -m benchmarks.metrics_cost

# mypy --strict over src/fastmw, benchmarks/ and tests/ (the files in pyproject's [tool.mypy]).
lint: build $(VENV)/.deps-lint
	$(VENV)/bin/ruff check src tests benchmarks fuzz tools setup.py
	$(VENV)/bin/ruff format --check src tests benchmarks fuzz tools setup.py
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest fastmw._core --allowlist tools/stubtest-allowlist.txt

annotate: $(VENV)/.installed
	FASTMW_ANNOTATE=1 $(PY) setup.py -q build_ext --inplace --force
	@echo "wrote src/fastmw/_core.html"

# About five minutes the first time (debootstrap + apt), then reused (its stamp file).
chroot-pythons:
	timeout 1800 tools/provision_chroot.sh $(CHROOT)

wheels: $(VENV)/.deps-wheels chroot-pythons
	$(PY) tools/build_dists.py --out dist --chroot $(CHROOT)
	$(PY) tools/check_dists.py dist

wheels-test: $(VENV)/.deps-wheels chroot-pythons
	@ls dist/fastmw-*.tar.gz dist/fastmw-*.whl >/dev/null 2>&1 || { echo "dist/ is empty: run make wheels first"; exit 1; }
	$(PY) tools/test_dists.py --python $(PYTHON) --chroot $(CHROOT) dist/fastmw-*.whl dist/fastmw-*.tar.gz

# The packaging gate CI runs after `make test`: sdist -> default-Python wheel -> auditwheel,
# content + twine checks, then the suite against that wheel alone in a fresh venv, and
# the sdist installed with CC=/bin/false (refused, then pure with FASTMW_NO_EXTENSIONS=1).
wheel-check: $(VENV)/.deps-wheels
	$(PY) tools/build_dists.py --out $(WHEEL_CHECK_DIR) --python $(PYTHON) --no-pure
	$(PY) tools/check_dists.py $(WHEEL_CHECK_DIR)
	$(PY) tools/test_dists.py --python $(PYTHON) $(WHEEL_CHECK_DIR)/fastmw-*.whl
	$(PY) tools/test_dists.py --python $(PYTHON) --no-compiler $(WHEEL_CHECK_DIR)/fastmw-*.tar.gz

# The chroot under build/ is kept (minutes to remake): make clean-chroot removes it.
clean:
	[ ! -d build ] || find build -mindepth 1 -maxdepth 1 ! -name chroot -exec rm -rf {} +
	rm -rf $(VENV) dist wheelhouse src/*.egg-info src/fastmw/_core.c src/fastmw/*.html src/fastmw/*.so .pytest_cache .hypothesis

# Refuses while anything is mounted in the chroot: a bind mount there is this checkout.
clean-chroot:
	! grep -q " $$(realpath -m $(CHROOT))/" /proc/mounts || { echo "$(CHROOT) has mounts: not removing"; exit 1; }
	rm -rf --one-file-system $(CHROOT)

# The compiled core built with AddressSanitizer + UBSan into build/asan, then the core and
# middleware tests run against it (the interpreter itself is not instrumented: libasan is preloaded
# and pymalloc is bypassed so every allocation goes through the sanitizer).
# asan-build is the one sanitized-build recipe: ASAN_DIR, ASAN_CC and ASAN_EXTRA_FLAGS vary it (make fuzz).
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1 -g
ASAN_DIR ?= build/asan
ASAN_CC ?= gcc
ASAN_EXTRA_FLAGS ?=
ASAN_ENV := PYTHONPATH=build/asan PYTHONMALLOC=malloc FASTMW_REQUIRE_COMPILED=1 \
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  LD_PRELOAD="$$(gcc -print-file-name=libasan.so):$$(gcc -print-file-name=libubsan.so)"
asan-build: $(VENV)/.installed
	rm -rf $(ASAN_DIR) $(ASAN_DIR)-tmp
	CC=$(ASAN_CC) FASTMW_CFLAGS="$(ASAN_FLAGS) $(ASAN_EXTRA_FLAGS)" $(PY) setup.py -q build_ext --force -b $(ASAN_DIR) -t $(ASAN_DIR)-tmp
	tar cf - -C src --exclude='*.so' --exclude='*.c' --exclude='*.html' --exclude='__pycache__' fastmw | tar xf - -C $(ASAN_DIR)

asan: asan-build
	$(ASAN_ENV) $(PY) -c 'import fastmw._core as c; assert "build/asan" in c.__file__, c.__file__'
	$(ASAN_ENV) $(PY) -m pytest -p no:cacheprovider -q tests/core tests/middleware tests/plugins $(PYTEST_ARGS)

# Coverage-guided differential fuzzing (fuzz/, docs/fuzzing.md) for FUZZ_SECONDS in all, shared by
# the targets. atheris (PyPI) drives libFuzzer; libFuzzer's edge coverage needs clang's
# -fsanitize=fuzzer-no-link (gcc has no equivalent), so the sanitized build is made with clang
# (Debian's clang 14) into build/fuzz, and clang's ASan+UBSan runtime is merged with its libFuzzer
# into one preloaded library (as atheris' own source build would; its wheel ships none).
FUZZ_SECONDS ?= 300
FUZZ_DIR := build/fuzz
FUZZ_ARGS ?=
CLANG_RT = $$(clang --print-resource-dir)/lib/linux
$(VENV)/.deps-fuzz: $(VENV)/.deps-test requirements/fuzz.txt
	$(PIP) install -q -r requirements/fuzz.txt
	touch $@

$(FUZZ_DIR)/.built: $(VENV)/.installed src/fastmw/_core.pyx $(wildcard src/fastmw/_cy/*.pxi src/fastmw/_cy/*.h) \
		$(wildcard src/fastmw/*.py src/fastmw/*/*.py) setup.py
	test -f "$(CLANG_RT)/libclang_rt.fuzzer_no_main-x86_64.a" || \
		(apt-get update && apt-get install -y clang libclang-rt-14-dev)
	$(MAKE) --no-print-directory asan-build ASAN_DIR=$(FUZZ_DIR) ASAN_CC=clang ASAN_EXTRA_FLAGS=-fsanitize=fuzzer-no-link
	cp "$(CLANG_RT)/libclang_rt.asan-x86_64.a" $(FUZZ_DIR)-tmp/asan.a
	ar d $(FUZZ_DIR)-tmp/asan.a asan_preinit.cpp.o
	clang++ -shared -o $(FUZZ_DIR)/asan_with_fuzzer.so -Wl,--whole-archive \
		"$(CLANG_RT)/libclang_rt.fuzzer_no_main-x86_64.a" $(FUZZ_DIR)-tmp/asan.a -Wl,--no-whole-archive -lpthread -ldl
	touch $@

fuzz: $(FUZZ_DIR)/.built $(VENV)/.deps-fuzz
	$(PY) -m fuzz --seconds $(FUZZ_SECONDS) --build $(FUZZ_DIR) $(FUZZ_ARGS)
