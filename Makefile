# Tessera's front door. Every target sets up what it needs: a fresh machine needs only Python 3.11
# and, for `make test`, a Debian-like system where Postgres can be installed with apt-get.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LINT_ENV := TESSERA_DUCKDB_PATH=.tessera/lint.duckdb
UI_PORT ?= 3000
CONSOLE_PORT ?= 8765

.PHONY: help install demo ui console test lint format postgres chromium bench clean

help:
	@echo "make demo    set up, generate demo data and run the pipeline on DuckDB"
	@echo "make ui      set up and start the Dagster UI on http://127.0.0.1:$(UI_PORT)"
	@echo "make console set up and start the console on http://127.0.0.1:$(CONSOLE_PORT) (signed in)"
	@echo "make test    set up and run sqlfluff, ruff and the whole test suite (Postgres included)"
	@echo "make bench   run the benchmarks in bench/ (each prints JSON)"
	@echo "make format  apply ruff format and sqlfluff fix"

# pip's warnings (a package index it cannot read, for one) are not Tessera's: errors still show.
$(INSTALLED): pyproject.toml
	@echo "installing Tessera and its pinned dependencies into $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -qq --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(INSTALLED)

demo: install
	$(BIN)/tessera demo

# Dagster's runs, schedules and sensor state live under .tessera/dagster; the warehouse is the one
# of TESSERA_TARGET (default: DuckDB file tessera.duckdb, as `make demo` leaves it).
ui: install .tessera/profiles.yml
	@mkdir -p .tessera/dagster
	DAGSTER_HOME=$(CURDIR)/.tessera/dagster $(BIN)/dagster dev -m orchestration.definitions \
		-h 127.0.0.1 -p $(UI_PORT)

# The console reads the snapshot the last build left (make demo makes one). Without a user yet,
# it asks for an admin's password first.
console: install .tessera/profiles.yml
	@[ -f .tessera/console/users.yml ] || [ -n "$$TESSERA_CONSOLE_USERS" ] || \
		$(BIN)/tessera console add-user admin --role admin
	$(BIN)/tessera console --port $(CONSOLE_PORT)

# The test suite starts its own Postgres servers from the machine's binaries; install them if
# this machine has none.
postgres:
	@if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1; \
	then echo "Postgres server binaries found"; \
	else echo "installing Debian's postgresql package"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; fi

# The UI test drives Debian's chromium headless; install it if this machine has none.
chromium:
	@if command -v chromium >/dev/null 2>&1; \
	then echo "chromium found"; \
	else echo "installing Debian's chromium package"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; fi

.tessera/profiles.yml: profiles.yml.example
	@mkdir -p .tessera && cp profiles.yml.example $@

lint: install .tessera/profiles.yml
	$(LINT_ENV) $(BIN)/sqlfluff lint models macros data-tests
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: install .tessera/profiles.yml
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(LINT_ENV) $(BIN)/sqlfluff fix models macros data-tests

test: install postgres chromium lint
	$(BIN)/pytest

# bench/pipeline.py: 1,000,000 customers on DuckDB, then 200,000 on a throwaway Postgres.
bench: install postgres
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/pipeline.py --target postgres --customers 200000
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/identity.py
	$(BIN)/python bench/identity_incremental.py
	$(BIN)/python bench/identity_plan.py
	$(BIN)/python bench/console_preview.py
	$(BIN)/python bench/identity_fuzzy.py
	$(BIN)/python bench/predictive.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/collect.py
	$(BIN)/python bench/freshness.py

clean:
	rm -rf target logs .tessera tessera.duckdb tessera.duckdb.wal output
