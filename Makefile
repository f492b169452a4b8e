# contimg: two entry points for a fresh machine (Python 3.11 and the package registry).
#   make demo   set up .venv, install contimg, run the demo (simulated data -> products)
#   make test   set up .venv, install contimg with test extras, run every test (slow ones too)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# e.g. make science SCIENCE_ARGS="--keep --json-out science.json"
SCIENCE_ARGS ?=

.PHONY: demo test test-fast test-fault bench science docs clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fault: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m fault -s $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py

# one simulated hour of a realistic sky through the pipeline, measured against the truth (docs/science.md)
science: $(VENV)/.installed-test
	$(BIN)/python bench/science.py $(SCIENCE_ARGS)

docs: $(VENV)/.installed-test
	$(BIN)/python -m contimg.cli.docgen .

clean-venv:
	rm -rf $(VENV)
