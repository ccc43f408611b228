# The two commands of the README:  make demo  and  make test
VENV := .venv
BIN := $(VENV)/bin
OUT ?= demo-out

.PHONY: setup demo test test-fast lint bench

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/nmodal demo --out $(OUT)

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=25

test-fast: setup
	$(BIN)/python -m pytest -n 2 -m "not slow"

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/run.py
