# Backline — `make run` starts the portal; `make test` runs the whole suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
PG_URL ?= postgres://postgres@127.0.0.1:5432/backline
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# the suite runs in this many processes (pytest-xdist, a test file per process; each has its own
# test database, Redis database and var/), the longest files first (tests/conftest.py: SLOW_FILES_FIRST);
# the fault tests (tests/chaos) run beside it in one more process, on a Redis database of their own
# (the suite's processes take TEST_REDIS_URL's database and the ones below it: gw0 → 15, gw1 → 14)
TEST_PROCS ?= 2
CHAOS_REDIS_URL ?= $(TEST_REDIS_URL:/15=/13)
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test deps run-deps venv venv-run services lint fmt check bench chaos migrate clean e2e oidc-provider

## `make run` installs what Backline needs to run; `make test` adds the dev tools ([dev]).
$(RUN_STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

venv: $(STAMP)

venv-run: $(RUN_STAMP)

## Shell for the two package targets below: $(RUN_PACKAGES) adds to $missing what `make run`
## needs, $(APT_INSTALL_MISSING) installs whatever $missing names.
RUN_PACKAGES = command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	command -v slirp4netns >/dev/null 2>&1 || missing="$$missing slirp4netns"; \
	command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || missing="$$missing haproxy";
APT_INSTALL_MISSING = if [ -n "$$missing" ]; then \
	  echo "Installing$$missing with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

## What `make run` itself needs from Debian: bubblewrap and slirp4netns (the step sandbox and its
## isolated network) and haproxy (the demo's HAProxy-fronted service).
run-deps: venv-run
	@missing=""; \
	$(RUN_PACKAGES) \
	$(APT_INSTALL_MISSING)

## System packages: Chromium (browser tests), Prometheus (monitoring tests), wrk (make bench),
## bubblewrap and slirp4netns (the step and Terraform sandbox, its isolated network), Node.js and npm (the test OpenID provider),
## haproxy (the haproxy deploy driver), via apt-get.
deps: venv
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v prometheus >/dev/null 2>&1 || test -x /usr/bin/prometheus || missing="$$missing prometheus"; \
	fc-list 2>/dev/null | grep -qi dejavu || missing="$$missing fonts-dejavu-core"; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	$(RUN_PACKAGES) \
	$(APT_INSTALL_MISSING)

## The OpenID provider the identity tests run: npm's oidc-provider, into var/oidc-provider
## (the tests install it on first use too; the version is pinned in tests/identity/provider.py)
oidc-provider: venv
	$(PYTHON) -m tests.identity.provider

## PostgreSQL and Redis for tests: start them if they are not answering.
services:
	@pg_isready -h 127.0.0.1 -p 5432 -q || { echo "starting PostgreSQL"; pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; sleep 2; }
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { echo "starting Redis"; redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; sleep 1; }
	@for i in $$(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
	@psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='backline'" | grep -q 1 || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE backline"

## Start Backline: web + Celery worker + beat (+ embedded Redis and SQLite unless
## DATABASE_URL / REDIS_URL are set), demo data loaded. Ctrl-C stops everything.
run: run-deps
	$(PYTHON) manage.py run_portal

migrate: venv
	$(PYTHON) manage.py migrate --noinput

test: venv deps services oidc-provider
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	DATABASE_URL=$(PG_URL) REDIS_URL=$(TEST_REDIS_URL) $(PYTHON) manage.py makemigrations --check --dry-run
	@mkdir -p var; rm -f var/chaos-test.log; \
	BACKLINE_VAR_DIR=$(CURDIR)/var/test-chaos DATABASE_URL=$(PG_URL) REDIS_URL=$(CHAOS_REDIS_URL) $(BIN)/pytest tests/chaos -p no:cacheprovider $(PYTEST_ARGS) > var/chaos-test.log 2>&1 & chaos=$$!; \
	trap 'kill -INT $$chaos 2>/dev/null' INT TERM; \
	echo "tests/chaos runs beside the suite (its output: var/chaos-test.log, shown at the end)"; \
	DATABASE_URL=$(PG_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest -n $(TEST_PROCS) --dist loadfile --no-loadscope-reorder --ignore=tests/chaos $(PYTEST_ARGS); suite=$$?; \
	wait $$chaos; faults=$$?; \
	echo "=== tests/chaos (exit $$faults) ==="; cat var/chaos-test.log; \
	echo "make test: suite exit $$suite, tests/chaos exit $$faults"; \
	test $$suite = 0 && test $$faults = 0

e2e: venv deps services oidc-provider
	DATABASE_URL=$(PG_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest tests/e2e $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## `make bench ARGS=backstage-compare`: side by side with real Backstage (npm; skipped without
## it, or with BENCH_BACKSTAGE=0).
bench: venv deps services
	DATABASE_URL=$(PG_URL) REDIS_URL=$(TEST_REDIS_URL) $(PYTHON) -m tests.bench.run $(ARGS)

## Fault tests: worker SIGKILLs, Redis and PostgreSQL restarts (private servers), crowds.
## `make test` runs them too, in a short form (CHAOS_ROUNDS=2).
CHAOS_ROUNDS ?= 20
chaos: venv deps services
	CHAOS_ROUNDS=$(CHAOS_ROUNDS) DATABASE_URL=$(PG_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest tests/chaos $(PYTEST_ARGS)

clean:
	rm -rf var/ .pytest_cache .ruff_cache
