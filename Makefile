# The two commands of the README: `make demo` (set up and run the hub on this machine) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test setup system-deps lint typecheck pytest clean

$(BIN)/lienthong: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/lienthong

# The whole hub on this machine (object store, broker, worker, metrics), fed a demo stream. Ctrl-C stops it.
demo: setup
	$(BIN)/lienthong up --demo $(DEMO_ARGS)

system-deps:
	@bash ops/system-deps.sh

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

pytest: setup system-deps
	$(BIN)/pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
