# The two commands of the README: `make main` runs the main job, `make test` the test suite.
# Each does its own set-up first (Graphviz, then an editable install into the project's own
# virtualenv .venv, or into the virtualenv or conda env that is active), so both work on a
# fresh machine and install nothing into the system's Python.
ifeq ($(origin PYTHON),command line)
  # `make test PYTHON=/path/to/python`: that interpreter, as given
else ifneq ($(VIRTUAL_ENV)$(CONDA_PREFIX),)
  PYTHON := python
else
  PYTHON := .venv/bin/python
endif
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
# the extras `make setup` installs: dev (tests, examples); add test for the pinned CPU torch
EXTRAS ?= dev

.PHONY: setup main test bench lint docs

setup:
	@PYTHON=$(PYTHON) EXTRAS=$(EXTRAS) bash scripts/setup.sh

main: setup
	$(PYTHON) examples/bptt_check.py
	$(PYTHON) examples/char_rnn.py

test: setup
	$(PYTHON) -m pytest -q

bench: setup
	$(PYTHON) benchmarks/bench_rnn.py

lint: EXTRAS := lint
lint: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy

docs: EXTRAS := docs
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict
