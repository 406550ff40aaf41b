# The two commands of the README: `make demo` and `make test`. Both set themselves up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
# setup.py compiles the wire check with mypyc: a change to its source re-installs (rebuilds) the package.
WIRE_CHECK = forwarder/sentryroute_forwarder/route/wirecheck.py

.PHONY: demo test lint typecheck unit tools bench reliability fuzz hostile dashboard-picture clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml setup.py $(WIRE_CHECK) | $(BIN)/python
	$(BIN)/pip install -q -e '.[demo]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml setup.py $(WIRE_CHECK) | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.demo-installed

## demo: run the whole system on this machine (emulated Kubernetes API + Sentry) and show where telemetry went
demo: $(VENV)/.demo-installed
	$(BIN)/sentryroute demo

## test: everything CI runs — lint, type check, the chart tools, the whole test suite
test: lint typecheck tools unit

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy sentryroute forwarder/sentryroute_forwarder operator/sentryroute_operator

tools:
	bash scripts/install-tools.sh
	bash scripts/install-js-clients.sh
	bash scripts/install-promql-check.sh
	bash scripts/install-bench-tools.sh

unit: $(VENV)/.dev-installed
	$(BIN)/pytest -q -p no:cacheprovider

## bench: sentryroute and rotel (a Rust collector) side by side on every shape of traffic, ~10 minutes
BENCH_ROUNDS ?= 3
BENCH_SECONDS ?= 3
BENCH_ARGS ?= --known-variants --steady-cpu 10
bench: $(VENV)/.dev-installed
	@echo "make bench: installs wrk + h2load (apt-get) and downloads rotel (PyPI wheel) if missing, then runs"
	@echo "  $(BENCH_ROUNDS) interleaved rounds of every shape (about 10 minutes); results in .bench/"
	bash scripts/install-bench-tools.sh
	bash scripts/install-rotel.sh
	$(BIN)/python bench/forwarder_bench.py --system both --rounds $(BENCH_ROUNDS) --seconds $(BENCH_SECONDS) \
		$(BENCH_ARGS) --json .bench/bench.json --markdown .bench/table.markdown

## reliability: the durability scenarios and the disk-queue throughput of docs/reliability.md (~3 minutes)
reliability: $(VENV)/.dev-installed
	bash scripts/install-bench-tools.sh
	bash scripts/install-rotel.sh
	$(BIN)/python bench/reliability.py --rounds $(BENCH_ROUNDS) --seconds $(BENCH_SECONDS)

## fuzz: the receivers' hypothesis fuzzing and the wire check's ASCII scan, long (the suite runs small seeded sets)
fuzz: $(VENV)/.dev-installed
	SENTRYROUTE_FUZZ=long $(BIN)/pytest -q -p no:cacheprovider tests/forwarder/test_fuzz_receivers.py \
		tests/forwarder/test_wirecheck.py::test_the_ascii_scan_agrees_with_bytes_isascii_on_random_strings

## dashboard-picture: docs/dashboard.png — the Grafana dashboard's queries evaluated on a ~90 s demo run
dashboard-picture: $(VENV)/.dev-installed
	$(BIN)/pip install -q -e '.[picture]'
	$(BIN)/python scripts/dashboard_picture.py

## hostile: the hostile-input table of docs/reliability.md (attacks on a forwarder process, ~5 minutes)
hostile: $(VENV)/.dev-installed
	$(BIN)/python bench/hostile.py --write-doc --json .bench/hostile.json

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
