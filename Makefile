# Two commands on a fresh machine: `make labs` and `make test`. Each installs what it
# needs into a project-local virtualenv first. `make lab` starts JupyterLab (its own
# environment, so the test environment stays lean).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JVENV := .venv-jupyter
JSTAMP := $(JVENV)/.installed
PIP_FLAGS ?= --quiet --disable-pip-version-check

.PHONY: help test labs lab lint clean

help:
	@echo "make labs   run every solution notebook on the embedded target; report in build/"
	@echo "make test   run the whole test suite (lint, layer contracts, unit, embedded, notebooks)"
	@echo "make lab    start JupyterLab on labs/"
	@echo "make clean  remove build/ and the virtualenvs"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "labkit needs Python 3.11 or newer: run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[test]'
	@touch $@

$(JSTAMP): pyproject.toml
	$(PYTHON) -m venv $(JVENV)
	$(JVENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(JVENV)/bin/python -m pip install $(PIP_FLAGS) -e '.[participant]'
	@touch $@

PY_DIRS := $(wildcard lib tests benchmarks)

lint: $(STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/lint-imports --no-cache
	$(BIN)/labkit build-labs --check

test: lint
	$(BIN)/pytest

labs: $(STAMP)
	$(BIN)/labkit run --target embedded

lab: $(JSTAMP)
	$(JVENV)/bin/jupyter lab labs/

clean:
	rm -rf build .pytest_cache .ruff_cache .import_linter_cache $(VENV) $(JVENV)
	find lib tests -name __pycache__ -type d -prune -exec rm -rf {} +
