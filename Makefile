# The two commands of the README: `make up` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: up test lint bench-import clean

$(BIN)/zerogate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(BIN)/zerogate
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

up: $(BIN)/zerogate
	$(BIN)/zerogate up $(ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src
	$(BIN)/lint-imports

test: $(VENV)/.dev-installed
	scripts/install-test-deps.sh
	$(MAKE) --no-print-directory lint
	scripts/run-tests.sh

bench-import: $(VENV)/.dev-installed
	$(BIN)/python bench/import_inventory.py

# HTTP proxy throughput beside nginx and Caddy; e.g. `make bench-http ARGS=--quick`.
.PHONY: bench-http
bench-http: $(VENV)/.dev-installed
	scripts/install-bench-deps.sh
	$(BIN)/python bench/http_proxy.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Tunnels through a connector beside a direct connection and socat; `ARGS=--quick` for a short run.
.PHONY: bench-connector
bench-connector: $(VENV)/.dev-installed
	scripts/install-bench-deps.sh
	$(BIN)/python bench/connector.py $(ARGS)
