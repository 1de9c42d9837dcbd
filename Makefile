# xborder-monitor: `make demo` runs it, `make test` tests it. See README.md.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install system-deps demo test check lint format typecheck unit cli robustness integration dashboards bench bench-install bench-more clean

# The project and its tools in a local virtualenv; redone when pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	touch $(STAMP)

install: $(STAMP)

# promtool and amtool validate the Prometheus and Alertmanager files in tests, and
# prometheus runs every dashboard's and alerting rule's query on live metrics;
# PostgreSQL (initdb, postgres) serves the delivery history's tests;
# Java 17 and Maven run Apache Kafka for the integration tests.
system-deps:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null \
	    || ! command -v amtool >/dev/null \
	    || ! { command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-alertmanager postgresql >/dev/null; \
	  else \
	    echo "install Prometheus, amtool and PostgreSQL: sudo apt-get install prometheus prometheus-alertmanager postgresql"; exit 1; \
	  fi; \
	fi
	@command -v java >/dev/null || { echo "Java 17 is needed for the Apache Kafka integration tests"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is needed to fetch Apache Kafka for the integration tests"; exit 1; }

demo: install
	$(BIN)/xborder demo

test: install system-deps check
	$(BIN)/python -m pytest -q

check: lint typecheck

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy

# The test folders are in ARCHITECTURE.md ("Tests"); `make test` runs them all.
# Unit tests: fast, no broker, under 30 s.
unit: install
	$(BIN)/python -m pytest -q tests/unit

# `xborder` and the worker as subprocesses, without a broker.
cli: install
	$(BIN)/python -m pytest -q tests/cli

# Hypothesis properties, the replay fuzz, long simulated streams: slower by nature.
robustness: install
	$(BIN)/python -m pytest -q tests/robustness

# Everything that needs a broker: Apache Kafka (Java 17, Maven) and the embedded Tansu.
integration: install system-deps
	$(BIN)/python -m pytest -q -m integration

# The Grafana dashboards (deploy/grafana/dashboards) from their code in
# xborder_tools/dashboards; commit the result (tests/deploy holds the files to the code).
dashboards: install
	$(BIN)/xborder dashboards generate

# The data path against the consume limit and Quix Streams, in one run on one
# Apache Kafka (docs/performance.md); BENCH_ARGS, e.g. --records 200000.
bench: install system-deps bench-install
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)

bench-install: $(VENV)/.bench-installed

$(VENV)/.bench-installed: pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,demo,bench]'
	touch $@

# Per-stage costs, kill -9 recovery series, state size per million items.
bench-more: install
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.worker
	$(BIN)/python -m benchmarks.state_size --n 50000

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache .hypothesis
