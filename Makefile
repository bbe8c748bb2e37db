# ttma-relay developer commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv test lint run bench clean
help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install the pinned requirements

test: venv ## run the whole test suite (starts the emulators itself when none are running)
	$(BIN)/pytest

lint: venv ## ruff
	$(BIN)/ruff check .

run: venv ## serve ingest locally on the emulators with a dev secret (Ctrl-C stops everything)
	$(BIN)/python -m devstack.run_ingest

bench: venv ## benchmarks (print figures; not part of the test suite)
	$(BIN)/python bench/ingest_latency.py

clean: ## remove the venv and local state
	rm -rf $(VENV) .devstack .pytest_cache .ruff_cache .hypothesis
