# CyberMesh: two commands take a fresh machine to a running cluster (`make demo`) or to a green
# test suite (`make test`). Everything they need is installed by the targets below.

PYTHON_BIN ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cybermesh
TEST_REDIS_URL ?= redis://127.0.0.1:6379/14
SEEDS ?= 200

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install services lint typecheck migrations-check test test-unit demo bench sim lock clean

help:
	@echo "make demo   - install, set up and start a local CyberMesh node (prints URLs and login)"
	@echo "make test   - install, start PostgreSQL/Redis if needed, run lint, types and all tests"
	@echo "make bench  - run the benchmarks, write bench/results/*.json and print a table"
	@echo "make sim SEEDS=N - run N seeded consensus simulator schedules"

$(STAMP): requirements/base.txt requirements/test.txt
	@test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/base.txt -r requirements/test.txt
	@touch $(STAMP)

install: $(STAMP)

services:
	@scripts/ensure_services.sh

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

migrations-check: install
	$(PY) manage.py makemigrations --check --dry-run

# Two cores: the in-process suite runs on two xdist workers (each with its own test database
# and Kafka broker); the cluster and browser tests start real processes and run on their own.
test: install services lint typecheck migrations-check
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	  $(PY) -m pytest -p no:cacheprovider -q -n 2 -m "not cluster and not browser"
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	  $(PY) -m pytest -p no:cacheprovider -q -m "cluster or browser"

test-unit: install
	$(PY) -m pytest -q -m "unit"

demo: install
	@scripts/demo.sh

bench: install
	@for module in $$(ls bench/bench_*.py | sed 's#/#.#; s#\.py$$##'); do \
	  echo ">> $$module"; $(PY) -m $$module || exit 1; done
	@$(PY) -m bench.summary

sim: install
	$(PY) -m simulator.run --seeds $(SEEDS) --validators 4,7

lock:
	cd requirements && ../$(VENV)/bin/pip-compile -q --strip-extras --no-header --no-emit-index-url --no-emit-find-links --allow-unsafe -o base.txt base.in
	cd requirements && ../$(VENV)/bin/pip-compile -q --strip-extras --no-header --no-emit-index-url --no-emit-find-links --allow-unsafe -o test.txt test.in

clean:
	rm -rf $(VENV) var .demo .cluster
