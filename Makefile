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

.PHONY: setup main test bench lint docs fuzz

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

# The fuzzer's long profile: FUZZ_COUNT random programs (or FUZZ_MINUTES) from FUZZ_SEED, then
# a kink pass a fifth as long; e.g. `make fuzz FUZZ_COUNT=20000` or `make fuzz FUZZ_MINUTES=10`.
# It compares with torch, so it installs the test extra (the pinned CPU torch).
FUZZ_COUNT ?= 5000
FUZZ_SEED ?= 0

fuzz: EXTRAS := test
fuzz: setup
	$(PYTHON) -m tests.fuzz $(if $(FUZZ_MINUTES),--minutes $(FUZZ_MINUTES),--count $(FUZZ_COUNT)) \
		--seed $(FUZZ_SEED) --with-kinks
