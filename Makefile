# The two commands: `make demo` and `make test`. Both build on `make install`.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install demo test lint typecheck pytest bench fuzz clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/tether demo

lint: install
	$(BIN)/ruff check --no-cache src tests $(wildcard bench)
	$(BIN)/ruff format --no-cache --check src tests $(wildcard bench)

typecheck: install
	$(BIN)/mypy

pytest: install
	scripts/with-services $(BIN)/pytest -n 2 $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install
	scripts/with-services $(BIN)/python -m bench $(BENCH_ARGS)

# A longer fuzz run than the suite's (tests/fuzz): FUZZ_EXAMPLES examples per operation.
FUZZ_EXAMPLES ?= 200
fuzz: install
	TETHER_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) scripts/with-services $(BIN)/pytest -n 2 tests/fuzz

clean:
	rm -rf $(VENV) .tether .pytest_cache .mypy_cache .ruff_cache
