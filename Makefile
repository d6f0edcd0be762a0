# The two commands a user needs: `make demo` and `make test`. Both create .venv on first use.
VENV := .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed

# The interpreters the project supports (pyproject.toml's requires-python); mypy and ruff
# target the lowest. PYTHON may be given (`make test PYTHON=python3.12`); otherwise python3 if
# it is supported, else the newest supported pythonX.Y on PATH.
SUPPORTED_PYTHONS := 3.11 3.12 3.13
comma := ,
PYTHON_CANDIDATES := python3 python3.13 python3.12 python3.11
# Prints "COMMAND MAJOR.MINOR" of the first of $(1) that runs and is supported, else nothing (a
# pyenv shim of a version that is not selected exits non-zero, so it counts as absent).
find_python = $(shell for p in $(1); do \
	v=$$($$p -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue; \
	for s in $(2); do [ "$$v" = "$$s" ] && echo "$$p $$v" && exit 0; done; done)
ifeq ($(PYTHON),)
  FOUND_PYTHON := $(call find_python,$(PYTHON_CANDIDATES),$(SUPPORTED_PYTHONS))
  PYTHON := $(word 1,$(FOUND_PYTHON))
  PYTHON_VERSION := $(word 2,$(FOUND_PYTHON))
else
  # Whatever version it is, so that check-python can name an unsupported one.
  PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
endif
# The stamp records the major.minor that built the virtualenv; another one rebuilds it from
# scratch (see $(STAMP)) rather than installing one Python's packages over another's.
VENV_PYTHON := $(shell sed -n 's/^python \([0-9.]*\).*/\1/p' $(STAMP) 2>/dev/null)

export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME := $(CURDIR)/var/prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90

.PHONY: install demo test lint typecheck bench clean up down services browser system-packages \
	check-python test-pythons FORCE

install: $(STAMP)

# Fails in well under a second, before anything is installed, when no supported Python is there.
ifeq ($(PYTHON),)
  PYTHON_PROBLEM := No supported Python found (tried $(PYTHON_CANDIDATES)).
else ifeq ($(PYTHON_VERSION),)
  PYTHON_PROBLEM := PYTHON=$(PYTHON) does not run.
else ifeq ($(filter $(SUPPORTED_PYTHONS),$(PYTHON_VERSION)),)
  PYTHON_PROBLEM := PYTHON=$(PYTHON) is Python $(PYTHON_VERSION).
endif
check-python:
ifneq ($(PYTHON_PROBLEM),)
	@echo "$(PYTHON_PROBLEM) The Strategy Engine supports Python $(subst $() ,$(comma) ,$(SUPPORTED_PYTHONS));" \
		"install one, or name it: make test PYTHON=python3.12" >&2; exit 1
endif

ifneq ($(VENV_PYTHON),$(PYTHON_VERSION))
$(STAMP): FORCE
endif

# A virtualenv of another Python (or a half-built one) is removed first: packages built for one
# version must not be mixed with another's.
$(STAMP): requirements.lock pyproject.toml | check-python
	@if [ -e $(VENV) ] && [ "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" != "$(PYTHON_VERSION)" ]; then \
		echo "$(VENV) is not a Python $(PYTHON_VERSION) virtualenv: removing it to rebuild with $(PYTHON)"; \
		rm -rf $(VENV); \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	echo "python $(PYTHON_VERSION) ($(PYTHON))" > $(STAMP)

FORCE:

demo: $(STAMP)
	$(BIN)/strategy-engine demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck system-packages
	$(BIN)/pytest -q

# Every supported interpreter on PATH, each in its own virtualenv under .venvs/, one line each
# (the full output is in .venvs/pyX.Y.log). Not part of CI's `make test`: it takes that once
# per interpreter.
test-pythons:
	@mkdir -p .venvs; status=0; found=""; \
	for v in $(SUPPORTED_PYTHONS); do \
		p=""; for c in python$$v python3; do \
			[ "$$($$c -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$$v" ] && p=$$c && break; \
		done; \
		[ -n "$$p" ] || continue; \
		found="$$found $$v"; start=$$(date +%s); \
		if $(MAKE) --no-print-directory test PYTHON=$$p VENV=.venvs/py$$v > .venvs/py$$v.log 2>&1; \
		then result=passed; else result=FAILED; status=1; fi; \
		summary=$$(grep -E '[0-9]+ (passed|failed|errors?)( |,|$$)' .venvs/py$$v.log | tail -n 1 | tr -d '='); \
		echo "Python $$v: $$result in $$(( $$(date +%s) - start )) s:" \
			"$$(echo "$${summary:-$$(tail -n 1 .venvs/py$$v.log)}" | sed 's/^ *//;s/ *$$//') (log .venvs/py$$v.log)"; \
	done; \
	if [ -z "$$found" ]; then echo "No supported Python (python3.11, python3.12, python3.13) on PATH" >&2; exit 1; fi; \
	exit $$status

# Debian packages that some tests drive: Chromium and chromedriver (the dashboard's browser
# test), Prometheus with promtool, and Alertmanager. Installed with apt only as root (as CI
# runs, so CI runs those tests); anyone else is told what will be skipped and how to install.
SYSTEM_PACKAGES := chromium:/usr/bin/chromium chromium-driver:/usr/bin/chromedriver \
	prometheus:/usr/bin/prometheus prometheus:/usr/bin/promtool \
	prometheus-alertmanager:/usr/bin/prometheus-alertmanager

system-packages:
	@missing=""; \
	for pair in $(SYSTEM_PACKAGES); do \
		[ -x "$${pair#*:}" ] || case " $$missing " in *" $${pair%%:*} "*) ;; *) missing="$$missing $${pair%%:*}";; esac; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else \
		case "$$missing" in *chromium*) skipped="the browser test";; *) skipped="";; esac; \
		case "$$missing" in *prometheus*) skipped="$${skipped:+$$skipped and }the Prometheus tests";; esac; \
		echo "Not root, so not installing$$missing: $$skipped will be skipped. To run them: sudo apt-get install$$missing"; \
	fi

# The old name of system-packages.
browser: system-packages

bench: $(STAMP)
	$(BIN)/strategy-engine bench --json

# The local stack on loopback: Redis, MLflow UI, Prefect server + work pool + worker.
# Pid files in var/run/, logs in var/log/. Ports move to the next free one if taken.
REDIS_PORT ?= 6379
MLFLOW_PORT ?= 5000
PREFECT_PORT ?= 4200
# DASHBOARD_PORT, the older name, still works: the API serves the dashboard.
API_PORT ?= $(or $(DASHBOARD_PORT),8060)

up: $(STAMP)
	$(BIN)/strategy-engine up --redis-port $(REDIS_PORT) --mlflow-port $(MLFLOW_PORT) \
		--prefect-port $(PREFECT_PORT) --api-port $(API_PORT)

# No install step: with no virtualenv nothing can be running, and a second `down` is a no-op.
down:
	@if [ -x $(BIN)/strategy-engine ]; then $(BIN)/strategy-engine down; fi

services: $(STAMP)
	$(BIN)/strategy-engine services

clean: down
	rm -rf $(VENV) .venvs var mlflow/mlflow.db mlflow/artifacts
