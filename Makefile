# Every target makes (or reuses) its own virtualenv in .venv and installs what it
# needs from requirements/ and this project; nothing is installed by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PYTEST_ARGS ?=
EXT_STAMP := $(VENV)/.ext-built

.PHONY: help venv build test test-compiled test-pure bench bench-e2e lint annotate clean

help:
	@echo "make bench     build, run the benchmarks, print the comparison table"
	@echo "make test      build, run the test suite compiled, then pure (FASTMW_NO_EXTENSIONS=1)"
	@echo "make bench-e2e end-to-end uvicorn load run"
	@echo "make lint      ruff + mypy --strict"
	@echo "make annotate  Cython HTML annotation of the core (src/fastmw/_core.html)"
	@echo "make clean     remove the venv and build products"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps-test: $(PY) requirements/build.txt requirements/test.txt
	$(PIP) install -q -r requirements/test.txt
	touch $@

$(VENV)/.deps-bench: $(VENV)/.deps-test requirements/bench.txt
	$(PIP) install -q -r requirements/bench.txt
	touch $@

$(VENV)/.deps-lint: $(VENV)/.deps-test requirements/lint.txt
	$(PIP) install -q -r requirements/lint.txt
	touch $@

$(VENV)/.installed: $(VENV)/.deps-test pyproject.toml setup.py
	$(PIP) install -q --no-build-isolation --no-deps -e .
	touch $@

# Rebuild the extension in place whenever the .pyx (or the build) changes.
$(EXT_STAMP): $(VENV)/.installed src/fastmw/_core.pyx setup.py
	$(PY) setup.py -q build_ext --inplace
	touch $@

venv: $(VENV)/.installed

build: $(EXT_STAMP)

test: build
	FASTMW_REQUIRE_COMPILED=1 $(PY) -m pytest $(PYTEST_ARGS)
	FASTMW_NO_EXTENSIONS=1 $(PY) -m pytest $(PYTEST_ARGS)

test-compiled: build
	FASTMW_REQUIRE_COMPILED=1 $(PY) -m pytest $(PYTEST_ARGS)

test-pure: build
	FASTMW_NO_EXTENSIONS=1 $(PY) -m pytest $(PYTEST_ARGS)

bench: build $(VENV)/.deps-bench
	$(PY) -m benchmarks

# wrk comes from Debian; without it (no apt, no root) e2e.py falls back to a Python load generator.
bench-e2e: build $(VENV)/.deps-bench
	command -v wrk || (apt-get update && apt-get install -y wrk) || echo "wrk not installed: using the Python load generator"
	$(PY) -m benchmarks.e2e

lint: build $(VENV)/.deps-lint
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

annotate: $(VENV)/.installed
	FASTMW_ANNOTATE=1 $(PY) setup.py -q build_ext --inplace --force
	@echo "wrote src/fastmw/_core.html"

clean:
	rm -rf $(VENV) build dist wheelhouse src/*.egg-info src/fastmw/_core.c src/fastmw/*.html src/fastmw/*.so .pytest_cache .hypothesis .benchmarks
