# One task runner: CI calls these same targets (.ci/run -> make test).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# apt needs root; use sudo only when we are not root already.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help run test lint bench profile docs redis-server wrk valgrind clean
# `make` alone lists the targets instead of building the virtualenv.
.DEFAULT_GOAL := help

help:
	@echo "make run      start the service on 127.0.0.1:8000 (in-memory stores, a dev key; BIND=host:port)"
	@echo "make test     install what the tests need (virtualenv, redis-server, wrk, valgrind), lint, run them"
	@echo "make lint     ruff and mypy"
	@echo "make bench    throughput and latency against the floors (docs/performance.md), ~4 minutes"
	@echo "make profile  machine instructions per request, by module (docs/performance.md)"
	@echo "make docs     check the OpenAPI description and the provider docs' snippets"
	@echo "make clean    remove the virtualenv, caches and the dev keys (.dev)"

# The runtime dependencies at constraints.txt's versions, the image's: what the tests and
# the bench run is what ships, and a new release upstream changes neither until it is
# pinned on purpose (docs/kubernetes.md). Development tools are not pinned there.
# `make run`, `make bench` and `make profile` need the runtime alone, which installs in
# half the time of everything (18 s against 36 s with pip's cache warm): a clean clone's
# `make bench` has five minutes in all.
$(BIN)/.installed-runtime: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

# The tests' and linters' tools on top.
$(BIN)/.installed: $(BIN)/.installed-runtime
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,helm,e2e]'
	touch $@

# Where `make run` listens: make run BIND=127.0.0.1:8080
BIND ?= 127.0.0.1:8000

run: $(BIN)/.installed-runtime
	$(BIN)/trustpub serve --dev --bind $(BIND)

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server with apt"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

# The load generator of `make bench` (and of its smoke run in the tests).
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "installing wrk with apt"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk >/dev/null; }

# The instruction counter of `make profile` (and of its smoke run in the tests).
valgrind:
	@command -v valgrind >/dev/null 2>&1 || { \
	  echo "installing valgrind with apt"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq valgrind >/dev/null; }

lint: $(BIN)/.installed
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy

test: $(BIN)/.installed redis-server wrk valgrind lint
	$(BIN)/pytest

# Throughput and latency against the floors, on this machine (docs/performance.md).
bench: $(BIN)/.installed-runtime redis-server wrk
	$(BIN)/python -m bench.run

# Where a request's CPU goes, in machine instructions counted by valgrind (docs/performance.md).
profile: $(BIN)/.installed-runtime redis-server valgrind
	$(BIN)/python -m bench.profile

# The docs that are checked: the OpenAPI description against the routes (and schemathesis),
# and every policy and CI snippet in docs/providers/.
docs: $(BIN)/.installed redis-server
	$(BIN)/pytest -q tests/api tests/unit/test_provider_docs.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .dev
