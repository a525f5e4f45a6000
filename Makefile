# The README's two commands: `make quickstart` and `make test`.
# Both create .venv on first use (Python >= 3.10 only) and reuse it after.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QS_DIR ?= runs/quickstart
PYTEST_WORKERS ?= 2
# Python writes each module's bytecode (__pycache__) on its first import and every later
# process reads it. uv installs no bytecode, and an environment that sets
# PYTHONDONTWRITEBYTECODE (CI machines, containers) would then have every process compile
# JAX, TensorFlow and the rest from source again (~10 s each; benchmarks/RESULTS.md).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup test test-all test-fast quickstart lint format bench clean

setup: $(STAMP)

# uv installs the same versions as pip (same resolver inputs) in ~20 s instead of ~110 s
# (benchmarks/RESULTS.md, "Test suite time"); pip is the fallback when uv cannot be had.
$(STAMP): setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	( $(BIN)/python -m pip install --quiet uv && \
	  $(BIN)/python -m uv pip install --quiet --python $(BIN)/python -e ".[test]" ) || \
	( $(BIN)/python -m pip install --quiet --upgrade pip && \
	  $(BIN)/python -m pip install --quiet -e ".[test]" )
	touch $(STAMP)

# CI's suite (.ci/run): every test but the `long` end-to-end runs, under 6 minutes on 2 cores.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "not long" --durations=15

# Everything, with the `long` end-to-end runs (several processes, kills, builds in fresh
# interpreters): run before every merge (benchmarks/RESULTS.md, "Test suite time").
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --durations=15

# The daily loop: every test but those marked slow (end-to-end runs, builds, processes).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "not slow" --durations=10

quickstart: $(STAMP)
	bash scripts/quickstart.sh $(QS_DIR)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	@echo "Run the scripts in benchmarks/ (see benchmarks/RESULTS.md for the commands)."

clean:
	rm -rf $(VENV) runs .pytest_cache *.egg-info
