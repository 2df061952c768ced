# The two commands of the README: `make main` runs the main job, `make test` the test suite.
# Each does its own set-up first (Graphviz and an editable install), so both work on a fresh machine.
PYTHON ?= python3
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: setup main test bench

setup:
	@PYTHON=$(PYTHON) bash scripts/setup.sh

main: setup
	$(PYTHON) examples/bptt_check.py
	$(PYTHON) examples/char_rnn.py

test: setup
	$(PYTHON) -m pytest -q

bench: setup
	$(PYTHON) benchmarks/bench_rnn.py
