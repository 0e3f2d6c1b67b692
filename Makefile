# The two set-up commands of the README. Both create .venv when it is missing or older than
# pyproject.toml; torch is pinned to the CPU build that lies on this machine's disk.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint setup clean bench-env

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/dlopt reproduce --quick --out report

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q -m "not slow" --durations=20

# Benchmark-only comparators (kornia, pytorch-minimize), never dependencies: --no-deps, so
# they cannot pull another torch (or torchvision) into the environment.
bench-env: $(STAMP)
	$(BIN)/pip install --quiet --no-deps kornia kornia_rs pytorch-minimize

clean:
	rm -rf $(VENV) report .pytest_cache .mypy_cache .ruff_cache
