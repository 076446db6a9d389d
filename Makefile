# Two commands set everything up on a fresh machine:
#   make run   - virtualenv + install, then the whole pipeline (dvc repro) on the embedded synthetic data
#   make test  - virtualenv + install, then the test suite (what CI runs)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Two cores: one intra-op thread pool of 2 for torch/TF; quieter TensorFlow logs.
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: params install run lint format test test-slow mlflow-ui mlflow-server ui-deps ui-check clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/dvc repro

# Static checks (pyproject.toml [tool.ruff], [tool.mypy]); CI runs them before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# What fixes most of `make lint`'s findings: the formatter, then ruff's safe fixes.
format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install
	$(BIN)/python -m pytest -q --durations=15

test-slow: install ui-deps
	$(BIN)/python -m pytest -q -m slow

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --default-artifact-root mlruns/artifacts --host 127.0.0.1 --port $(MLFLOW_PORT)

params: install
	$(BIN)/python -m ferops.stages.params

MLFLOW_PORT ?= 5000
# Tracking server on the project store; train with MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT)
mlflow-server: install
	$(BIN)/mlflow server --backend-store-uri sqlite:///mlruns/mlflow.db --artifacts-destination mlruns/artifacts --serve-artifacts --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 2

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Headless Chromium for the MLflow UI check (Debian packages).
ui-deps: install
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver)

ui-check: ui-deps
	$(BIN)/python scripts/ui_check.py --out outputs/ui

clean:
	rm -rf outputs multirun .pytest_cache
