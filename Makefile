# irtcat: `make run` to try it (`make run PORT=8010` on another port), `make test` to check it.
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/irtcat demo --port $(PORT)

# One BLAS thread: the tests' fits are small, and on 2 cores BLAS threads only fight the
# servers the API tests start (a multiple-group DIF test took 84 s with them, 5 s without,
# on a machine other work shared). The suite runs on one pytest-xdist worker per core
# (each with a PostgreSQL schema of its own, see tests/conftest.py): 7.5 min on 2 cores
# where one process took 13.
test: install lint
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto --dist worksteal

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
