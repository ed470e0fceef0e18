# coldflow: `make demo` runs the main job on a CPU-sized default, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# These CPUs advertise AMX that some VMs forbid; oneDNN must not use it for bf16.
export ONEDNN_MAX_CPU_ISA ?= AVX512_CORE_BF16
# Tests and the demo read local copies of data and weights when they exist beside the checkout.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)),)
export COLDFLOW_DATA ?= $(SHARED_DATA)
export COLDFLOW_WEIGHTS ?= $(SHARED_DATA)/weights
endif

.PHONY: setup demo test test-all lint format bench bench-quick bench-simulate clean

$(BIN)/coldflow: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned, so pip never resolves a newer (CUDA) build for the package
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/coldflow

demo: setup
	$(BIN)/coldflow study configs/studies/demo.yaml --out runs/demo

test: setup
	$(BIN)/python -m pytest -q -m "not slow"

test-all: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup  # every benchmark, full size; needs no data files but the shared ones
	PYTHON=$(BIN)/python bash benchmarks/run_all.sh

bench-quick: setup  # every benchmark at a small size (a few minutes; a GPU check)
	PYTHON=$(BIN)/python bash benchmarks/run_all.sh --quick

bench-simulate: setup  # generates the four study data sets once (minutes, GBs in a temp dir)
	$(BIN)/python benchmarks/bench_simulate.py

clean:
	rm -rf runs/demo .pytest_cache
