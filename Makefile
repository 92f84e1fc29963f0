# tfctr: `make test` installs and passes the tests; `make demo` runs the main job end to end.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: test demo lint bench clean

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
	$(BIN)/ruff check tfctr export serving tests bench
	$(BIN)/pytest -q tests

demo: $(VENV)/.installed-test
	$(BIN)/tfctr demo --out demo_out

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/quality.py

clean:
	rm -rf demo_out .pytest_cache build *.egg-info
