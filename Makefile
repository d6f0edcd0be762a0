# The two commands a user needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME := $(CURDIR)/var/prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90

.PHONY: install demo test lint typecheck bench clean up down services browser

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/strategy-engine demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck browser
	$(BIN)/pytest -q

# The dashboard's browser test drives Debian's Chromium through chromedriver (as root, as CI).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver; \
	fi

bench: $(STAMP)
	$(BIN)/strategy-engine bench --json

# The local stack on loopback: Redis, MLflow UI, Prefect server + work pool + worker.
# Pid files in var/run/, logs in var/log/. Ports move to the next free one if taken.
REDIS_PORT ?= 6379
MLFLOW_PORT ?= 5000
PREFECT_PORT ?= 4200
DASHBOARD_PORT ?= 8050

up: $(STAMP)
	$(BIN)/strategy-engine up --redis-port $(REDIS_PORT) --mlflow-port $(MLFLOW_PORT) \
		--prefect-port $(PREFECT_PORT) --dashboard-port $(DASHBOARD_PORT)

# No install step: with no virtualenv nothing can be running, and a second `down` is a no-op.
down:
	@if [ -x $(BIN)/strategy-engine ]; then $(BIN)/strategy-engine down; fi

services: $(STAMP)
	$(BIN)/strategy-engine services

clean: down
	rm -rf $(VENV) var mlflow/mlflow.db mlflow/artifacts
