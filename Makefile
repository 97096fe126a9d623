# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_DIR ?= runs/demo
CLIENTS ?= 5000
SEED ?= 42
HOST ?= 127.0.0.1
PORT ?= 8000
# Python's bytecode caches (git-ignored __pycache__), even where the environment turns them off: without
# them every test worker, and every server or CLI process a test starts, compiles the project again and
# pytest rewrites every test module's asserts again (about 3 s a process).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-fast lint typecheck lock audit venv browser bench mutation clean

# Installs the exact versions in requirements.lock (pip checks their hashes), then the project itself
# (editable, no resolving).
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## Simulate a cohort, validate it, build features, train, register and promote a champion, then serve it.
run: venv
	$(BIN)/dropout-risk simulate --clients $(CLIENTS) --seed $(SEED) --out $(RUN_DIR)/data
	$(BIN)/dropout-risk validate --sessions $(RUN_DIR)/data/sessions.csv --episodes $(RUN_DIR)/data/episodes.csv
	$(BIN)/dropout-risk features --sessions $(RUN_DIR)/data/sessions.csv --episodes $(RUN_DIR)/data/episodes.csv \
		--out $(RUN_DIR)/features.parquet
	$(BIN)/dropout-risk train --sessions $(RUN_DIR)/data/sessions.csv --episodes $(RUN_DIR)/data/episodes.csv \
		--truth $(RUN_DIR)/data/truth.csv --report $(RUN_DIR)/report.json --promote
	@KEY=$$($(BIN)/dropout-risk keys create --clinic demo-clinic | tail -n 1); \
	echo; echo "The API is starting on http://$(HOST):$(PORT) (docs at /docs). Try, from another shell:"; \
	echo "  curl -s -X POST http://$(HOST):$(PORT)/v1/clients/client-001/sessions \\"; \
	echo "    -H 'Authorization: Bearer $$KEY' -H 'Content-Type: application/json' \\"; \
	echo "    -d '{\"session_number\": 1, \"session_date\": \"2026-01-05\", \"scores\": {\"ors\": 17, \"srs\": 33}}'"; \
	echo "  curl -s http://$(HOST):$(PORT)/v1/clients?order=risk -H 'Authorization: Bearer $$KEY'"; echo
	$(BIN)/dropout-risk serve --host $(HOST) --port $(PORT)

## Debian's Chromium for the dashboard's browser tests (Playwright drives /usr/bin/chromium).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium) \
		|| echo "warning: could not install chromium (not root?): the browser tests will skip"

SOURCES := dropout_risk features training models serving cli tests benchmarks
PACKAGES := cli features models serving training

## Lint and formatting (ruff), then types (mypy), then the whole test suite: what CI runs. The reliability
## tests (real servers under load, kill -9, outages, fuzzing) run alone: their timings are theirs. The rest,
## the Spark engine and the dashboard in Chromium included, run on TEST_WORKERS processes.
TEST_WORKERS ?= 2
ALONE := reliability
FAST := not $(ALONE) and not spark and not browser
## The edit loop also leaves out the slow acceptance-size checks, which make test runs on the workers.
EDIT_LOOP := $(FAST) and not slow
## Both parts build the champion and the two test models once, in SHARED (emptied first).
SHARED := $(CURDIR)/.test-run
## Whole files to each worker, in the order tests/support/scheduling.py sets (xdist keeps it only with
## --no-loadscope-reorder).
ON_WORKERS := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
test: venv browser lint typecheck
	rm -rf $(SHARED)
	DROPOUT_RISK_TEST_SHARED=$(SHARED) $(BIN)/python -m pytest -m "not $(ALONE)" $(ON_WORKERS)
	DROPOUT_RISK_TEST_SHARED=$(SHARED) $(BIN)/python -m pytest -m "$(ALONE)"

## The edit loop: lint, types, then every test but the reliability, Spark and browser ones, on TEST_WORKERS
## processes (pytest-xdist; a module's tests stay on one worker, so its fixtures are built once).
test-fast: venv lint typecheck
	$(BIN)/python -m pytest -m "$(EDIT_LOOP)" $(ON_WORKERS)

lint: venv
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

## mypy cannot follow the package-dir mapping, so it reads the folders through links named as installed.
typecheck: venv
	@mkdir -p .typecheck/dropout_risk
	@ln -sfn ../../dropout_risk/__init__.py .typecheck/dropout_risk/__init__.py
	@for p in $(PACKAGES); do ln -sfn ../../$$p .typecheck/dropout_risk/$$p; done
	MYPYPATH=.typecheck $(BIN)/mypy -p dropout_risk

## Mutation testing (mutmut) of the modules where a silent bug costs most, each against its own tests;
## not part of CI. One module: make mutation MODULES=models/calibration.py (docs/testing.md).
MODULES ?=
MUTATION_JOBS ?= 2
mutation: venv
	$(BIN)/python scripts/mutation.py --jobs $(MUTATION_JOBS) $(MODULES)

## Re-resolve requirements.lock from pyproject.toml (after changing a dependency or a bound).
lock: venv
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --extra test --extra spark --strip-extras \
		--no-emit-find-links --no-emit-index-url --output-file requirements.lock pyproject.toml

## Speed figures (see benchmarks/README.md).
bench: venv
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/serving_start.py
	$(BIN)/python benchmarks/simulate_speed.py
	$(BIN)/python benchmarks/features_build.py
	$(BIN)/python benchmarks/train_speed.py
	$(BIN)/python benchmarks/compare_speed.py
	$(BIN)/python benchmarks/serving_latency.py
	$(BIN)/python benchmarks/score_throughput.py
	$(BIN)/python benchmarks/workers_scaling.py
	$(BIN)/python benchmarks/spark_vs_pandas.py
	$(BIN)/python benchmarks/attack_limits.py
	$(BIN)/python benchmarks/monitor_speed.py

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis .mypy_cache .typecheck *.egg-info mlflow.db mlruns

## Known vulnerabilities in the locked set (pip-audit); an unreachable advisory database is reported, not fatal.
audit: venv
	scripts/audit.sh
