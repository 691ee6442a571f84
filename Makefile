# duel: two commands on a fresh machine (Python 3.11+ and make): `make run`, then `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data.tar.gz
USERS ?= 10000
SEED ?= 42
PYTEST_ARGS ?=
export DBT_PROFILES_DIR := $(CURDIR)/dbt/duel

.DEFAULT_GOAL := help
.PHONY: help install run data test test-fast lint format lock db-start db-stop db-status clean airflow airflow-up test-airflow

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

# $(call venv,DIR,LOCK[,PYTHON[,VERB]]): the venv DIR (made with PYTHON, default $(PYTHON)) with
# uv in it (the same pins, minutes faster) and LOCK's pins (`uv pip VERB`, default install), then
# duel itself, editable, unless LOCK is the benchmark's (it installs duel from its own lock).
# --compile-bytecode: the packages' .pyc written once here, as pip does (uv does not by default);
# without them every process (each dbt build, each `duel` command) compiles dbt, pandas and
# plotly again where PYTHONDONTWRITEBYTECODE is set (CI, containers): seconds per process. duel's
# own modules likewise (an editable install is not compiled): 0.1-0.2 s of every `duel` command.
define venv
	test -x $(1)/bin/python || $(or $(3),$(PYTHON)) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --disable-pip-version-check uv
	$(1)/bin/uv pip $(or $(4),install) --quiet --compile-bytecode --python $(1)/bin/python $(if $(4),,-r )$(2)
	$(if $(filter bench/%,$(2)),,$(1)/bin/uv pip install --quiet --python $(1)/bin/python --no-deps -e .)
	$(if $(filter bench/%,$(2)),,$(1)/bin/python -m compileall -q src/duel)
endef

$(VENV)/.installed: pyproject.toml requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "duel needs Python 3.11+, found " + sys.version.split()[0] + "; set PYTHON=python3.11")'
	$(call venv,$(VENV),requirements.txt)
	@# the notebooks' kernel "duel" (this venv's python): `jupyter nbconvert --execute` works after `make run`
	$(BIN)/python -m ipykernel install --sys-prefix --name duel --display-name "Python (duel)" >/dev/null
	@# nbconvert and JupyterLab reach their kernels over Unix sockets in Jupyter's private runtime
	@# directory, not over TCP on loopback (unencrypted: ipykernel warns at every start)
	mkdir -p $(VENV)/etc/jupyter
	for app in nbconvert server; do \
		echo '{"KernelManager": {"transport": "ipc"}}' > $(VENV)/etc/jupyter/jupyter_$${app}_config.json; done
	touch $@

install: $(VENV)/.installed ## Create .venv, install the pinned dependencies, register the notebooks' kernel "duel"

DEMO := data.tar.gz

$(DEMO): | $(VENV)/.installed
	$(BIN)/duel generate --users $(USERS) --seed $(SEED) -o $(DEMO)

data: $(DEMO) ## Generate a demo ./data.tar.gz if there is none (never overwrites yours)

# Only the default ./data.tar.gz is ever generated: a DATA=... that does not exist is an error.
run: install $(if $(filter $(DEMO),$(DATA)),$(DEMO)) ## Start the embedded Postgres, ingest ./data.tar.gz (or DATA=...), build, report, summarise
	$(BIN)/duel run $(DATA)

# -v: each test's name as it starts and its result as it ends (a long test is never silent);
# --durations: the slowest tests at the end.
PYTEST_PROGRESS ?= -v --durations=15
# pytest-xdist: two workers, each with its own embedded Postgres, a test file at a time (a file's
# fixtures stay on one worker), the files with slow tests first (tests/conftest.py orders them).
# PYTEST_WORKERS= runs everything in one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile --no-loadscope-reorder

# sqlfluff's dbt templater compiles the project: it needs a reachable database (the embedded one).
lint: install ## ruff (lint + format check), mypy, sqlfluff on the dbt models: what CI runs first
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/duel db start >/dev/null
	eval "$$($(BIN)/duel db env)" && $(BIN)/sqlfluff lint dbt/duel/models dbt/duel/macros dbt/duel/snapshots

format: install ## ruff format + ruff's safe fixes, sqlfluff fix on the dbt models
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/duel db start >/dev/null
	eval "$$($(BIN)/duel db env)" && $(BIN)/sqlfluff fix dbt/duel/models dbt/duel/macros dbt/duel/snapshots

test: install browser ## Run the whole test suite (real Postgres, real dbt, real dataset from ../shared)
	$(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_PROGRESS) $(PYTEST_ARGS)

test-fast: install ## The suite without the tests marked slow (dbt builds, notebooks, end-to-end runs): the edit-test loop
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_WORKERS) $(PYTEST_PROGRESS) $(PYTEST_ARGS)

.PHONY: py312 test-py312
# pyenv's 3.12 first (its shim only works when 3.12 is selected), then any python3.12 that runs.
PYTHON312 ?= $(shell for p in $$HOME/.pyenv/versions/3.12*/bin/python3.12 $$(command -v python3.12); do \
	"$$p" -c 'import sys' 2>/dev/null && { echo "$$p"; break; }; done)
.venv-py312/.installed: pyproject.toml requirements.txt
	@test -n "$(PYTHON312)" || { echo "no python3.12 found: set PYTHON312=/path/to/python3.12"; exit 1; }
	$(call venv,.venv-py312,requirements.txt,$(PYTHON312))
	touch $@

py312: .venv-py312/.installed ## Create .venv-py312 (duel on Python 3.12) for test-py312

test-py312: py312 browser ## Run the fast suite (not marked slow) on Python 3.12 in .venv-py312
	.venv-py312/bin/python -m pytest -m "not slow" -p no:cacheprovider $(PYTEST_WORKERS) $(PYTEST_ARGS)

.PHONY: browser
browser: ## Install Debian's chromium for the report test (apt, no recommends), if /usr/bin/chromium is missing
	@test -x /usr/bin/chromium || { \
		echo "installing chromium with apt (--no-install-recommends, about 25 packages) for the report test"; \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
			--no-install-recommends chromium; }

lock: ## Regenerate requirements.txt, requirements-airflow.txt and requirements-spark.txt from pyproject.toml
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra test --extra lint --extra s3 --universal --python-version 3.11 -o requirements.txt --quiet
	$(BIN)/uv pip compile pyproject.toml --extra airflow --extra test --extra s3 --universal --python-version 3.11 -o requirements-airflow.txt --quiet
	$(BIN)/uv pip compile pyproject.toml --extra spark --extra test --universal --python-version 3.11 -o requirements-spark.txt --quiet

db-start: install ## Start the embedded Postgres
	$(BIN)/duel db start

db-stop: install ## Stop the embedded Postgres
	$(BIN)/duel db stop

db-status: install ## Say what answers at PGHOST:PGPORT
	$(BIN)/duel db status

.PHONY: dbt-build
dbt-build: install ## dbt build from the terminal (what `cd dbt/duel && dbt build` does; DB must hold data)
	$(BIN)/duel db start
	eval "$$($(BIN)/duel db env)" && cd dbt/duel && $(abspath $(BIN))/dbt build

# --- notebooks: JupyterLab (the `notebooks` extra, pinned where it meets requirements.txt) ------
NOTEBOOK_PORT ?= 8888
.PHONY: notebooks

$(VENV)/.notebooks: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.txt -e '.[notebooks]'
	$(BIN)/python -m ipykernel install --sys-prefix --name duel --display-name "Python (duel)"
	touch $@

# answer_yes: the first Ctrl-C stops JupyterLab (no "Shutdown this Jupyter server (y/[n])?" prompt).
notebooks: $(VENV)/.notebooks ## JupyterLab on http://127.0.0.1:8888 with this venv's kernel "duel" (Ctrl-C stops)
	$(BIN)/jupyter lab --ip 127.0.0.1 --port $(NOTEBOOK_PORT) --notebook-dir "$(CURDIR)" \
		--ServerApp.answer_yes=True $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

# --- Airflow: optional, in its own venv so the core install stays light -------------------------
# requirements-airflow.txt: the `airflow` extra locked together with duel's own dependencies (~200
# packages), installed with uv for speed. Tests: tests/airflow, with this venv's python.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_BIN := $(AIRFLOW_VENV)/bin
AIRFLOW_PORT ?= 8080
AIRFLOW_ENV := PATH="$(CURDIR)/$(AIRFLOW_BIN):$$PATH" AIRFLOW_HOME="$(CURDIR)/.duel/airflow" \
	AIRFLOW__CORE__DAGS_FOLDER="$(CURDIR)/dags" AIRFLOW__CORE__LOAD_EXAMPLES=False DO_NOT_TRACK=1 \
	DUEL_HOME="$(CURDIR)/.duel" DUEL_OUT="$(CURDIR)/out" DUEL_DATA="$(abspath $(DATA))"

$(AIRFLOW_VENV)/.installed: pyproject.toml requirements-airflow.txt
	$(call venv,$(AIRFLOW_VENV),requirements-airflow.txt,,sync)
	$(AIRFLOW_ENV) $(AIRFLOW_BIN)/airflow db migrate
	touch $@

airflow: $(AIRFLOW_VENV)/.installed ## Create .venv-airflow (Airflow 3, dbt, duel); AIRFLOW_HOME=.duel/airflow

airflow-up: airflow ## Start `airflow standalone` on http://127.0.0.1:8080 (DAG duel_pipeline; Ctrl-C stops)
	$(AIRFLOW_ENV) AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$(AIRFLOW_PORT) \
		AIRFLOW__API__BASE_URL=http://127.0.0.1:$(AIRFLOW_PORT) $(AIRFLOW_BIN)/airflow standalone

test-airflow: airflow ## Run the DAG end to end (`airflow dags test`) on the real dataset; compare with `duel run`
	$(AIRFLOW_BIN)/python -m pytest tests/airflow $(PYTEST_ARGS)

# --- Spark: optional, in its own venv (.venv-spark: the `spark` extra, locked in requirements-spark.txt)
# dbt-spark (session method) and pyspark: `duel transform --target spark` and `duel ingest --engine
# spark` run a local Spark session (Java 17+). Tests: tests/spark, with this venv's python.
SPARK_VENV ?= .venv-spark
SPARK_BIN := $(SPARK_VENV)/bin
.PHONY: spark test-spark

$(SPARK_VENV)/.installed: pyproject.toml requirements-spark.txt
	@command -v java >/dev/null || { echo "Spark needs Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	$(call venv,$(SPARK_VENV),requirements-spark.txt,,sync)
	touch $@

spark: $(SPARK_VENV)/.installed ## Create .venv-spark (dbt-spark, pyspark, duel) for the Spark target and ingest

test-spark: spark ## Run tests/spark (portable macros, Spark ingest, the whole project built on Postgres and on Spark and compared)
	$(SPARK_BIN)/python -m pytest tests/spark $(PYTEST_PROGRESS) $(PYTEST_ARGS)

# --- Benchmark: its own venv (.venv-bench: the bench extra, locked in bench/requirements.txt) -----
# `duel ingest` itself runs from .venv, exactly as users run it; inputs and the bench server live
# under /tmp/duel-bench. See bench/README.md.
.PHONY: bench bench-quick bench-lock
BENCH_VENV ?= .venv-bench
ARGS ?=

$(BENCH_VENV)/.installed: pyproject.toml bench/requirements.txt
	$(call venv,$(BENCH_VENV),bench/requirements.txt)
	touch $@

bench: install $(BENCH_VENV)/.installed ## Benchmark duel ingest vs the notebook, dlt, floors at 10k/100k/1M (ARGS=--quick)
	$(BENCH_VENV)/bin/python bench/run.py $(ARGS)

bench-quick: ## The benchmark on the real 10,000 files only (under two minutes)
	$(MAKE) bench ARGS=--quick

bench-lock: install ## Regenerate bench/requirements.txt (the main dependencies + the bench extra)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip compile pyproject.toml --extra bench --universal --python-version 3.11 -o bench/requirements.txt --quiet

clean: ## Stop the server; delete .venv, out/ and .duel: the embedded Postgres with EVERY database in it (keeps data.tar.gz)
	-test -x $(BIN)/duel && $(BIN)/duel db stop
	@test ! -d .duel/pgdata || echo "make clean: deleting .duel/pgdata, duel's embedded Postgres with every \
	database in it (duel, duel_demo, ...); data.tar.gz and any other Postgres are kept"
	rm -rf $(VENV) .duel out
