# All set-up happens here: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
STAMP  := $(VENV)/.installed
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache

.PHONY: venv demo test test-slow bench bench-estimators bench-mlmc experiments experiments-fast clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e '.[torch,ml,dev,distributed]'
	touch $(STAMP)

demo: venv
	$(PY) -m sde_engine.demo --out plots/demo

test: venv
	$(PY) -m pytest -n auto

test-slow: venv
	$(PY) -m pytest -m slow

bench: venv
	$(PY) -m benchmarks

bench-estimators: venv
	$(PY) -m benchmarks.estimator_bench

bench-mlmc: venv
	$(PY) -m benchmarks.mlmc_bench

experiments: venv
	$(PY) -m experiments

# the weak-order and solver figures only (minutes, not the ~hour of the full set)
experiments-fast: venv
	$(PY) -m experiments rmsprop_gaussian rmsprop_bc_gaussian rmsprop_skewed adam_gaussian \
	    adam_bc_gaussian adam_bc_skewed solvers_gbm trajectories_rmsprop

clean:
	rm -rf $(VENV) .numba_cache .pytest_cache build *.egg-info
