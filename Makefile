# sensorops: every set-up step lives here, so a fresh clone needs only `make run` or `make test`.
# Targets are idempotent: the virtualenv is created once and reinstalled only when pyproject.toml or the
# constraints change.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install.stamp
# The one place pins live for the reproducible CPU install (torch 2.13.0's CPU wheel is local here).
CONSTRAINTS ?= requirements/constraints-cpu.txt
MLFLOW_PORT ?= 5000
VIZ_PORT ?= 4141
PIPELINE ?= __default__
# two pytest-xdist workers fill a 2-core CI box (tests/conftest.py says what runs where)
TEST_WORKERS ?= 2
export KEDRO_DISABLE_TELEMETRY := true

.PHONY: help install run test lint format mlflow-server mlflow-team ui viz viz-build bench serve clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install sensorops with its dev tools (no-op when up to date)

run: $(STAMP)  ## install, then run the whole workflow (PIPELINE=__default__) on the bundled BasicMotions data
	$(BIN)/kedro run --pipelines=$(PIPELINE)

test: $(STAMP)  ## install, then run the whole test suite (TEST_WORKERS=2 pytest-xdist workers; 0 = one process)
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

lint: $(STAMP)  ## ruff lint and format check
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

mlflow-server: $(STAMP)  ## a real tracking server on 127.0.0.1:$(MLFLOW_PORT) (sqlite backend, local artifacts, lean)
	mkdir -p mlflow-server
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server --host 127.0.0.1 --port $(MLFLOW_PORT) \
	  --workers 1 --backend-store-uri sqlite:///$(CURDIR)/mlflow-server/mlflow.db \
	  --artifacts-destination $(CURDIR)/mlflow-server/artifacts

mlflow-team: $(STAMP)  ## team server: PostgreSQL store (MLFLOW_BACKEND_STORE_URI), proxied artifacts, basic auth; see pipelines/mlflow-team.sh
	MLFLOW=$(CURDIR)/$(BIN)/mlflow MLFLOW_TEAM_PORT=$${MLFLOW_TEAM_PORT:-$(MLFLOW_PORT)} bash pipelines/mlflow-team.sh

ui: $(STAMP)  ## MLflow UI over the embedded store (mlflow.db) on 127.0.0.1:$(MLFLOW_PORT)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --host 127.0.0.1 --port $(MLFLOW_PORT) \
	  --workers 1 --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

viz: $(STAMP)  ## kedro-viz on 127.0.0.1:$(VIZ_PORT), no browser
	$(BIN)/kedro viz run --host 127.0.0.1 --port $(VIZ_PORT) --no-browser

viz-build: $(STAMP)  ## static kedro-viz site in ./build (headless)
	$(BIN)/kedro viz build

bench: $(STAMP)  ## run every benchmark; JSON in benchmarks/results/latest.json, summary in latest.md
	$(BIN)/python benchmarks/run_all.py

serve: $(STAMP)  ## serve sensorops-classifier@production (fallback @staging) on Ray Serve, 127.0.0.1:8000 (SERVE_ARGS=...)
	$(BIN)/sensorops serve $(SERVE_ARGS)

clean:  ## remove the virtualenv, data outputs and the embedded MLflow store
	rm -rf $(VENV) build mlflow.db mlruns
	find data -type f ! -name .gitkeep -delete
