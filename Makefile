# The two set-up commands for a fresh machine: `make demo` and `make test`.
PY     ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.oskit-installed
TSTAMP := $(VENV)/.oskit-test-installed

.PHONY: setup setup-test demo test real-node test-real test-real-cluster bench oracle lint clean

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

# The real-cluster suite: real OpenSearch assembled from Maven Central into a cache (docs/real-node.md), then
# tests/real against each version in turn: 2.19.6 (OpenJDK 17) and 3.6.0 (a JDK 21+: Temurin 25).
# OSKIT_REAL_VERSIONS="2.19.6" for one; OSKIT_REAL_VERSION=V (one version) still works.
OSKIT_REAL_VERSIONS ?= 2.19.6 3.6.0
REAL_VERSIONS = $(or $(OSKIT_REAL_VERSION),$(OSKIT_REAL_VERSIONS))
# where kit.realnode looks for a JDK 21+ (kit/realnode/recipe.py JDK21_PLUS)
JDK21_PLUS := /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/java-25-openjdk-amd64 \
	/usr/lib/jvm/temurin-21-jdk-amd64 /usr/lib/jvm/java-21-openjdk-amd64

real-node: setup-test
	command -v mvn >/dev/null && command -v unzip >/dev/null && command -v runuser >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq maven unzip util-linux >/dev/null)
	test -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java || \
		(apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless >/dev/null)
	# 3.x: Temurin 25 (apt package where Adoptium's source is set up), else a Debian OpenJDK 25/21
	case " $(REAL_VERSIONS)" in *" 3."*) \
		for j in $(JDK21_PLUS); do test -x $$j/bin/java && exit 0; done; \
		apt-get update -qq; \
		for p in temurin-25-jdk openjdk-25-jdk-headless openjdk-21-jdk-headless; do \
			apt-get install -y -qq $$p >/dev/null 2>&1 && exit 0; done; \
		echo "OpenSearch 3.x needs a JDK 21+ in one of: $(JDK21_PLUS)"; \
		echo "install Temurin 25 (https://adoptium.net/installation/linux/) or run OSKIT_REAL_VERSIONS=2.19.6"; \
		exit 1;; esac
	for v in $(REAL_VERSIONS); do $(BIN)/python -m kit.realnode assemble --version $$v || exit 1; done

test-real: real-node
	rc=0; for v in $(REAL_VERSIONS); do echo "== tests/real on OpenSearch $$v"; \
		OSKIT_REAL_VERSION=$$v $(BIN)/python -m pytest -q tests/real || rc=1; done; exit $$rc

# Three real nodes on loopback (512 MB heaps) with environments/real-cluster.yaml: shards, replicas, a node lost.
test-real-cluster: OSKIT_REAL_VERSIONS = 2.19.6
test-real-cluster: real-node
	$(BIN)/python -m pytest -q tests/real_cluster

bench: setup
	@echo "benchmarks are run by hand: see bench/README.md"

# The differential oracle: the request corpus on a real OpenSearch (REAL=URL) and a fresh embedded node.
# MODEL_SERVER=URL (a model server both can reach) adds the ML Commons and neural sequences.
oracle: setup
	test -n "$(REAL)" || (echo "usage: make oracle REAL=http://127.0.0.1:9201 [MODEL_SERVER=http://127.0.0.1:8765]"; exit 2)
	$(BIN)/oskit node compare --real $(REAL) $(if $(MODEL_SERVER),--model-server $(MODEL_SERVER)) --out oracle-report.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
