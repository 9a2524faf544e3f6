# The two commands of the README: `make run` starts the bot, `make test` runs every test.
# Both create the virtualenv (.venv) and install what they need on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config.example.toml

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("circlebot needs Python >= 3.11, this is " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.run-installed
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

run: $(VENV)/.run-installed
	$(BIN)/circlebot run --config $(CONFIG)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/mypy src

test: $(VENV)/.test-installed lint
	$(BIN)/python -m pytest

bench: $(VENV)/.test-installed
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
