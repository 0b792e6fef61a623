# `make run` and `make test` do all the set-up: a virtual environment in .venv, then the work.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The data root: $MTLRUN_DATA if set, else ../shared/data when it exists, else ./data
# (where torchvision downloads the datasets on first use when online).
MTLRUN_DATA ?= $(if $(wildcard ../shared/data/MNIST),$(abspath ../shared/data),$(abspath data))
export MTLRUN_DATA

.PHONY: install run test test-full bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/mtlrun train +experiment=vae_mnist

# Two tiers: `test` leaves out the tests marked slow (pyproject.toml says which those are), on
# two worker processes (pytest-xdist); `test-full` runs everything, one test at a time, as CI
# does (its signal and DDP tests start processes of their own). pytest's exit status 5 (no test
# collected) fails either.
test: install
	$(BIN)/python -m pytest -m "not slow" -n 2

test-full: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/cpu_drift.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/step_overhead.py
	$(BIN)/python bench/vae_speed.py
	$(BIN)/python bench/vae_step.py
	$(BIN)/python bench/multimnist_table.py
	$(BIN)/python bench/ddp_speed.py

lint: install
	$(BIN)/ruff check mtlrun tests bench
	$(BIN)/ruff format --check mtlrun tests bench

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache dist build
