# ttma-relay developer commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv test test-unit lint audit run dev dev-up dev-down demo soak bench clean fuzz deploy-proof
help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@# The dev tools and the functions' own code (devstack/, ttma_sandbox/, handlers/, main.py)
	@# are not in the package (`pip install .` is the CLI): the venv finds them in the repository.
	$(BIN)/python -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "ttma-relay-repository.pth").write_text(str(pathlib.Path.cwd()) + "\n")'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install the pinned requirements

test: venv ## run the whole test suite (starts the emulators itself when none are running)
	$(BIN)/pytest

test-unit: venv ## the unit tests only: seconds, no emulators, no Java
	$(BIN)/pytest tests/unit

lint: venv ## ruff
	$(BIN)/ruff check .

audit: venv ## pip-audit: runtime pins fail on a vulnerability, dev tools warn; unreachable: warn
	$(BIN)/python scripts/audit_dependencies.py requirements.txt
	$(BIN)/python scripts/audit_dependencies.py --warn-only requirements-dev.txt

# CONSUMERS="name=url ..." adds downstream consumers, subscribed as Terraform's `consumers`.
CONSUMER_FLAGS = $(foreach c,$(CONSUMERS),--consumer $(c))

dev: venv ## the whole pipeline locally, in the foreground (Ctrl-C stops everything); CONSUMERS=name=url
	$(BIN)/python -m devstack.stack dev $(CONSUMER_FLAGS)

run: dev ## same as make dev

dev-up: venv ## the whole pipeline locally, in the background; returns once all is healthy
	$(BIN)/python -m devstack.stack up $(CONSUMER_FLAGS)

dev-down: ## stop what make dev-up started (also after a failed start); frees every port
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m devstack.stack down; \
	else $(PYTHON) -m devstack.stack down; fi

demo: venv ## simulated calls through the running stack (starts one if none), then a summary
	$(BIN)/python -m devstack.demo $(if $(N),--calls $(N))

soak: venv ## N calls (default 60) under faults on its own stack; non-zero on any loss; SEED=
	$(BIN)/python -m devstack.soak --calls $(or $(N),60) $(if $(SEED),--seed $(SEED))

deploy-proof: venv ## the zip Terraform deploys, on python312, with its env, end to end (emulators)
	$(BIN)/python scripts/deploy_artifact_proof.py

bench: venv ## benchmarks side by side with their floors (~10 min): table, ratios, bench/results/
	$(BIN)/python -m bench $(SECTIONS)

# Cases per fuzzer for `make fuzz` (CI runs each with its own small default).
FUZZ_INGEST ?= 100000
FUZZ_ARCHIVE ?= 5000
FUZZ_UNITS ?= 20000
fuzz: venv ## every fuzzer, long (FUZZ_INGEST=100000 ...); reports in .devstack/fuzz/
	@mkdir -p .devstack/fuzz
	TTMA_FUZZ_EXAMPLES=$(FUZZ_UNITS) TTMA_FUZZ_REPORT_DIR=.devstack/fuzz $(BIN)/pytest -q \
		tests/unit/test_transcript_turns.py tests/unit/test_call_event_fuzz.py -k fuzz
	TTMA_FUZZ_EXAMPLES=$(FUZZ_ARCHIVE) TTMA_FUZZ_REPORT_DIR=.devstack/fuzz \
		$(BIN)/pytest -q tests/integration/test_archive_fuzz.py
	TTMA_FUZZ_EXAMPLES=$(FUZZ_INGEST) TTMA_FUZZ_REPORT_DIR=.devstack/fuzz \
		$(BIN)/pytest -q tests/integration/test_ingest_fuzz.py
	@cat .devstack/fuzz/fuzz-*.json

clean: ## remove the venv and local state
	rm -rf $(VENV) .devstack .pytest_cache .ruff_cache .hypothesis
