# Two commands on a fresh Debian/Ubuntu machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint unit integration bench deps system-deps clean

deps: system-deps $(STAMP)

system-deps:
	@./scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: deps
	$(BIN)/python scripts/demo.py

lint: deps
	$(BIN)/ruff check src tests bench examples scripts
	$(BIN)/ruff format --check src tests bench examples scripts
	$(BIN)/mypy

unit: deps
	$(BIN)/pytest -q -n 2 tests/unit

# The inner loop: lint, types and the unit tests (no daemon, no HAProxy), about a minute.
check: lint unit

integration: deps
	@./scripts/install-system-deps.sh --test
	$(BIN)/pytest -q -n 2 --dist loadfile tests/integration

# Two workers, one test file each at a time: integration tests mostly wait on processes.
test: lint
	@./scripts/install-system-deps.sh --test
	$(BIN)/pytest -q -n 2 --dist loadfile tests

bench: deps
	@./scripts/install-system-deps.sh --bench
	$(BIN)/python -m bench.zero_downtime

clean:
	rm -rf $(VENV) .demo .mypy_cache .pytest_cache .ruff_cache
