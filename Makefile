# tfctr: `make test` installs and passes the tests; `make demo` runs the main job end to end.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: test demo bench bench-report bench-deepctr-venv bench-fuxictr-venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-test: setup.py $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.installed-bench: setup.py $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $@

test: $(VENV)/.installed-test
	$(BIN)/ruff check tfctr tfctr_command.py export serving tests bench
	$(BIN)/pytest -q -p no:cacheprovider --doctest-modules tfctr   # the docstrings' examples
	$(BIN)/pytest -q --durations=40 --random-order-bucket=module --random-order-seed=20261203 tests  # no test leans on another's leftovers

demo: $(VENV)/.installed-test
	$(BIN)/tfctr demo --out demo_out

bench/.venv-deepctr/bin/python:
	$(PYTHON) -m venv bench/.venv-deepctr
	bench/.venv-deepctr/bin/pip install --quiet "tensorflow==2.21.*" "tf-keras==2.21.*" deepctr

bench-deepctr-venv: bench/.venv-deepctr/bin/python

# FuxiCTR (PyTorch, CPU) for bench/train_throughput.py --against fuxictr; not part of make bench
bench/.venv-fuxictr/bin/python:
	$(PYTHON) -m venv bench/.venv-fuxictr
	bench/.venv-fuxictr/bin/pip install --quiet "torch==2.13.0" "fuxictr==2.3.10"

bench-fuxictr-venv: bench/.venv-fuxictr/bin/python

# the whole suite, one benchmark at a time (they share the cores), then BENCHMARKS.md and its plots (about 2.5 h on 2 cores)
bench: $(VENV)/.installed-bench bench-deepctr-venv
	$(BIN)/python bench/all.py

# BENCHMARKS.md, the plots and README's summary again from bench/results, without running anything
bench-report: $(VENV)/.installed-bench
	$(BIN)/python bench/report.py

clean:
	rm -rf demo_out .pytest_cache build *.egg-info
