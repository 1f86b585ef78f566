# maskscope: `make demo` and `make test` do all the set-up on a fresh machine.
#
#   make demo                 create .venv, install maskscope, explain the bundled samples
#   make test                 same set-up plus test tools and system packages, run the suite
#   make lint                 ruff
#
# torch is installed only when .venv has none. For a GPU, install the CUDA build of your
# choice into .venv first, or name it: make demo TORCH="torch==2.5.1+cu121 --index-url ..."

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test lint setup setup-dev system-deps bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) install $(TORCH)
	touch $@

$(VENV)/.core: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.core
setup-dev: $(VENV)/.dev

system-deps:
	bash scripts/system-deps.sh

demo: setup
	$(BIN)/maskscope demo $(DEMO_ARGS)

test: system-deps setup-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup-dev
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

screenshots: system-deps setup-dev
	xvfb-run -a -s "-screen 0 1280x1024x24" $(BIN)/python scripts/screenshots.py
	xvfb-run -a -s "-screen 0 1280x1024x24" $(BIN)/python scripts/screenshot_roi.py
	xvfb-run -a -s "-screen 0 1280x1024x24" $(BIN)/python scripts/screenshot_channels.py
	MASKSCOPE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/notebook/test_e2e.py

bench: setup
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache maskscope-demo
