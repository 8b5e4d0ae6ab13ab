# The two set-up commands for a fresh machine: `make demo` and `make test`.
PY     ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.oskit-installed
TSTAMP := $(VENV)/.oskit-test-installed

.PHONY: setup setup-test demo test real-node test-real bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# PyPI's default torch + torchvision (CUDA build, runs on CPU): the machine's local CPU wheel
	# of torch has no torchvision that imports with it, and PyPI's newest release sorts above it.
	$(BIN)/pip install -q torch torchvision
	$(BIN)/pip install -q -e '.[all]'
	touch $@

setup-test: $(TSTAMP)

$(TSTAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[all,test]'
	# Headless Chromium for the search-page tests (Debian's package; Playwright only drives it).
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	touch $@

demo: setup
	$(BIN)/oskit demo

test: setup-test
	$(BIN)/python -m pytest -q

# The real-cluster suite: a real OpenSearch (2.19.6 by default; OSKIT_REAL_VERSION=3.6.0 for 3.x, on
# Temurin 25) assembled from Maven Central into a cache (docs/real-node.md), then tests/real against it.
REAL_VERSION_ARG := $(if $(OSKIT_REAL_VERSION),--version $(OSKIT_REAL_VERSION))

real-node: setup-test
	command -v mvn >/dev/null && command -v unzip >/dev/null && command -v runuser >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq maven unzip util-linux >/dev/null)
	test -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java || \
		(apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless >/dev/null)
	$(BIN)/python -m kit.realnode assemble $(REAL_VERSION_ARG)

test-real: real-node
	$(BIN)/python -m pytest -q tests/real

bench: setup
	@echo "benchmarks are run by hand: see bench/README.md"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
