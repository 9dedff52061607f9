# The two entry points a newcomer needs: `make demo` and `make test`.
# Each sets up its own virtualenv idempotently.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint fmt bench clean lock

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c requirements.lock --upgrade pip setuptools
	$(BIN)/python -m pip install -q --no-build-isolation -c requirements.lock -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/exmail-bridge demo -c config.toml

check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: check
	$(BIN)/pytest

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/connections.py --tenants 2000 --json

# requirements.lock pins every package for every Python >= 3.11 (markers keep apart what
# differs, e.g. async-timeout below 3.11.3); the tools of requirements-tools.in included.
lock: $(STAMP)
	$(BIN)/python -m pip install -q -c requirements.lock uv
	$(BIN)/uv pip compile pyproject.toml requirements-tools.in --all-extras --universal \
	    --python-version 3.11 --no-emit-package exmail-bridge \
	    --custom-compile-command "make lock" -q -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
