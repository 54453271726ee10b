# DeFtunes pipeline. `make demo` runs the whole pipeline on this machine; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# One build, outside the clone, shared by tests, the demo and later runs.
DEFTUNES_CACHE ?= $(HOME)/.cache/deftunes
export DEFTUNES_CACHE
export CARGO_TARGET_DIR ?= $(DEFTUNES_CACHE)/target
CARGO ?= cargo
DEFTUNES := $(CARGO_TARGET_DIR)/debug/deftunes
LAMBDA_VENV := $(DEFTUNES_CACHE)/venv-cargo-lambda
# DuckDB with its iceberg/avro/sqlite extensions, installed from PyPI (offline-safe).
PY_VENV := $(DEFTUNES_CACHE)/venv-py
PY_REQ := local/python/requirements.txt
export DEFTUNES_PYTHON := $(PY_VENV)/bin/python
# moto (AWS emulator) for the S3/Glue adapter test; the same venv terraform/tests/run.sh uses.
TF_TESTS_VENV := $(DEFTUNES_CACHE)/venv-tf-tests
TF_TESTS_REQ := terraform/tests/requirements-tests.txt
HOST_PYTHON ?= $(shell command -v python3.11 || command -v python3)
export DEFTUNES_MOTO_SERVER ?= $(TF_TESTS_VENV)/bin/moto_server

.PHONY: help build demo deftunes cargo-lambda test test-rust test-serving test-terraform chromium mariadb lint fmt lambda-build clean python moto startup

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

build: ## Build every crate (tests, functions and the deftunes tool) once
	$(CARGO) build --workspace --all-targets --locked

# Venvs are rebuilt only when their requirements change (content hash: fresh clones reuse the cache).
python: ## Python venv with DuckDB (reads the Iceberg tables) and dbt
	@PYTHON=$(HOST_PYTHON) bash local/python/venv.sh $(PY_VENV) $(PY_REQ) local/python/duckdb_env.py

moto: ## moto_server (AWS emulator) for the AWS adapter test; the venv terraform/tests/run.sh uses
	@PYTHON=$(HOST_PYTHON) bash local/python/venv.sh $(TF_TESTS_VENV) $(TF_TESTS_REQ)

# Debian's Chromium for the dashboard test (headless); installed once, as root or through sudo.
chromium: ## Install Debian's chromium (headless browser for the dashboard test) if missing
	@command -v chromium >/dev/null || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; }

# Debian's MariaDB server (classicmodels' local MySQL, started by the tests and `deftunes run` on a
# port of their own); installed once without starting the system service.
mariadb: ## Install Debian's mariadb-server (the local MySQL of the classicmodels pipeline) if missing
	@command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  policy=/usr/sbin/policy-rc.d; made=; \
	  if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' | $$sudo tee $$policy >/dev/null; $$sudo chmod +x $$policy; made=1; fi; \
	  status=0; { $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq mariadb-server >/dev/null; } || status=$$?; \
	  [ -z "$$made" ] || $$sudo rm -f $$policy; exit $$status; }

# The pipeline `make demo` runs: deftunes (API emulator, local Postgres) or sparkify (files landed in the lake).
PIPELINE ?= deftunes
demo: build python $(if $(filter classicmodels,$(PIPELINE)),mariadb) ## Run a pipeline locally end to end (PIPELINE=deftunes|sparkify|classicmodels|spotify)
	$(DEFTUNES) run --pipeline $(PIPELINE)

test: build python moto mariadb test-rust test-serving test-terraform ## Run all tests (Rust, serving/dbt end to end, Terraform checks)

# Clippy too, so CI holds the code to -D warnings and not only a developer's `make lint`.
test-rust:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) test --workspace --all-targets --locked --no-fail-fast

# The demo end to end into a throwaway directory and its dashboard in headless Chromium; then
# the serving checks on runs of their own: an incremental window (--keep), a changed user and
# late items ingested through `deftunes transform`, no lost join rows, an idempotent rerun; and
# the Redshift target compiled offline with its BI models as materialized views. Then Sparkify: its run
# (counts checked against the generator and the raw files), its dashboard, its spec changed under the
# loaded table (evolved in place, read by DuckDB and dbt), its dbt tests on hand-made edge cases, and its
# Redshift compile. Then classicmodels: its run on a local MariaDB (tables, fact and revenue checked against
# the source database), its dashboard, its dbt tests on hand-made edge cases, and its Redshift compile. Then
# spotify: its run against the OAuth/paged API emulator (two runs across a catalogue change: versions,
# additions and type-2 artists checked against what was served), dashboard, scratch dbt tests, Redshift compile.
# After each run, the run report's charts of its pipeline.toml are queried on its warehouse.
test-serving: chromium mariadb
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(DEFTUNES) run --dir "$$tmp/run"; \
	$(DEFTUNES_PYTHON) local/python/dashboard_check.py "$$tmp/run/dashboard.html" \
	  --warehouse "$$tmp/run/warehouse/warehouse.duckdb"; \
	$(DEFTUNES_PYTHON) local/python/report_charts_check.py pipelines/deftunes --warehouse "$$tmp/run/warehouse/warehouse.duckdb"; \
	$(DEFTUNES_PYTHON) local/python/serving_check.py --deftunes $(DEFTUNES) --workdir "$$tmp/check"; \
	$(DEFTUNES_PYTHON) local/python/redshift_compile_check.py --workdir "$$tmp/dbt-rs"; \
	$(DEFTUNES) run --pipeline sparkify --dir "$$tmp/sparkify"; \
	$(DEFTUNES_PYTHON) local/python/sparkify_dashboard_check.py "$$tmp/sparkify/dashboard.html" \
	  --warehouse "$$tmp/sparkify/warehouse/warehouse.duckdb" --summary "$$tmp/sparkify/run-summary.json"; \
	$(DEFTUNES_PYTHON) local/python/report_charts_check.py pipelines/sparkify --warehouse "$$tmp/sparkify/warehouse/warehouse.duckdb"; \
	$(DEFTUNES_PYTHON) local/python/evolution_check.py --deftunes $(DEFTUNES) --run "$$tmp/sparkify" \
	  --workdir "$$tmp/evolution"; \
	$(DEFTUNES_PYTHON) local/python/sparkify_scratch_check.py --workdir "$$tmp/sparkify-scratch"; \
	$(DEFTUNES_PYTHON) local/python/redshift_compile_check.py --project pipelines/sparkify/dbt --workdir "$$tmp/sparkify-rs"; \
	$(DEFTUNES) run --pipeline classicmodels --dir "$$tmp/classicmodels"; \
	$(DEFTUNES_PYTHON) local/python/classicmodels_dashboard_check.py "$$tmp/classicmodels/dashboard.html" \
	  --warehouse "$$tmp/classicmodels/warehouse/warehouse.duckdb" --summary "$$tmp/classicmodels/run-summary.json"; \
	$(DEFTUNES_PYTHON) local/python/report_charts_check.py pipelines/classicmodels --warehouse "$$tmp/classicmodels/warehouse/warehouse.duckdb"; \
	$(DEFTUNES_PYTHON) local/python/classicmodels_scratch_check.py --workdir "$$tmp/classicmodels-scratch"; \
	$(DEFTUNES_PYTHON) local/python/redshift_compile_check.py --project pipelines/classicmodels/dbt --workdir "$$tmp/classicmodels-rs"; \
	$(DEFTUNES) run --pipeline spotify --dir "$$tmp/spotify"; \
	$(DEFTUNES_PYTHON) local/python/spotify_dashboard_check.py "$$tmp/spotify/dashboard.html" \
	  --warehouse "$$tmp/spotify/warehouse/warehouse.duckdb" --summary "$$tmp/spotify/run-summary.json"; \
	$(DEFTUNES_PYTHON) local/python/report_charts_check.py pipelines/spotify --warehouse "$$tmp/spotify/warehouse/warehouse.duckdb"; \
	$(DEFTUNES_PYTHON) local/python/spotify_scratch_check.py --workdir "$$tmp/spotify-scratch"; \
	$(DEFTUNES_PYTHON) local/python/redshift_compile_check.py --project pipelines/spotify/dbt --workdir "$$tmp/spotify-rs"

# Run through bash, so a lost executable bit cannot turn the checks into a silent pass; a missing
# script fails.
test-terraform:
	@[ -f terraform/tests/run.sh ] || { echo "test-terraform: terraform/tests/run.sh is missing" >&2; exit 1; }
	bash terraform/tests/run.sh

lint: ## rustfmt, clippy -D warnings, terraform fmt
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	terraform fmt -check -recursive terraform

fmt: ## Format Rust and Terraform
	$(CARGO) fmt --all
	terraform fmt -recursive terraform

$(LAMBDA_VENV)/bin/cargo-lambda:
	python3 -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/pip install --quiet 'cargo-lambda==1.9.2' 'ziglang==0.17.1'

cargo-lambda: $(LAMBDA_VENV)/bin/cargo-lambda ## Install cargo-lambda (then put it on PATH as printed)
	@echo 'cargo-lambda is in $(LAMBDA_VENV)/bin: export PATH="$(LAMBDA_VENV)/bin:$$PATH"'

# The demo's own build of the tool: no second build with other features or another target dir.
deftunes: build ## Run the built deftunes tool: make deftunes ARGS="run --window-to 2020-02-29"
	$(DEFTUNES) $(ARGS)

lambda-build: $(LAMBDA_VENV)/bin/cargo-lambda ## Build the Lambda zips (arm64) into target/lambda/<function>/bootstrap.zip
	rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	PATH="$(LAMBDA_VENV)/bin:$$PATH" CARGO_TARGET_DIR=$(DEFTUNES_CACHE)/target-lambda \
	  cargo lambda build --release --arm64 --output-format zip --lambda-dir target/lambda --include pipelines \
	  $(foreach f,$(notdir $(wildcard functions/*)),-p $(f))
	@for z in target/lambda/*/bootstrap.zip; do \
	  b=$$(stat -c %s $$z); \
	  awk -v z=$$z -v b=$$b 'BEGIN { printf "%-42s %6.2f MB%s\n", z, b / 1e6, (b >= 12e6 ? "  (over the 12 MB goal)" : "") }'; \
	done

# Start-up to ready of each function (spawn to its first poll of the Runtime API), against a fake
# Runtime API and local stores. No build here (`make build` makes the debug binaries): the release
# binaries when all are built, else the debug ones. STARTUP_ARGS="--aws" for the deployed stores'
# SDK clients, "--json file" to keep the numbers; FUNCTIONS="transform" for one.
STARTUP_RUNS ?= 11
FUNCTIONS ?= $(notdir $(wildcard functions/*))
startup: ## Time each Lambda function's start-up to ready (ms; release build if present, else debug)
	@build=release; \
	for f in $(FUNCTIONS); do [ -x "$(CARGO_TARGET_DIR)/release/$$f" ] || build=debug; done; \
	dir=$(CARGO_TARGET_DIR)/$$build; echo "startup: $$build binaries in $$dir"; \
	$(HOST_PYTHON) local/python/startup_probe.py --runs $(STARTUP_RUNS) $(STARTUP_ARGS) \
	  $(foreach f,$(FUNCTIONS),"$$dir/$(f)")

BENCH_MB ?= 200
# A second file, transformed once for its peak memory (the memory target is stated at 1 GB; 0 skips).
BENCH_RSS_MB ?= 1000
# Rows of the prefilled sessions table the record-identity phases commit into (0 skips them).
BENCH_IDENTITY_ROWS ?= 10000000
.PHONY: bench
# A release build (what Lambda runs: thin LTO, one codegen unit); the first one takes about 15
# minutes on 2 cores, later ones reuse the target directory.
bench: ## Benchmark the transform (MB/s, CPU-s/GB and its floors, peak RSS, a 2 kB object end to end, Lambda cost) vs plain arrow-json, and record identity's cost (report in .deftunes/bench/)
	$(CARGO) build --release --locked -p deftunes-local --bin deftunes
	$(CARGO_TARGET_DIR)/release/deftunes bench --mb $(BENCH_MB) --rss-mb $(BENCH_RSS_MB) --identity-rows $(BENCH_IDENTITY_ROWS)

# The CPU goal is stated against a commit (BENCH_BEFORE, before the transform's performance work):
# its release build, from its own sources kept beside the cache (built once, about 15 minutes), and
# this one take turns on the same file, as the machine's speed moves between hours. Prints and
# writes (.deftunes/bench/against.json) the CPU and time ratios, pair by pair. Not in `make test`.
BENCH_BEFORE ?= 6b6a2f8
BENCH_PAIRS ?= 10
BENCH_BEFORE_SRC := $(DEFTUNES_CACHE)/bench-before/$(BENCH_BEFORE)
.PHONY: bench-before
bench-before: ## The transform against the build of BENCH_BEFORE, in turns on one file: CPU and time ratios (the CPU goal)
	$(CARGO) build --release --locked -p deftunes-local --bin deftunes
	@[ -f $(BENCH_BEFORE_SRC)/Cargo.toml ] || { mkdir -p $(BENCH_BEFORE_SRC) && git archive $(BENCH_BEFORE) | tar -x -C $(BENCH_BEFORE_SRC); }
	cd $(BENCH_BEFORE_SRC) && CARGO_TARGET_DIR=$(DEFTUNES_CACHE)/target-before $(CARGO) build --release --locked -p deftunes-local --bin deftunes
	$(CARGO_TARGET_DIR)/release/deftunes bench-against $(DEFTUNES_CACHE)/target-before/release/deftunes --mb $(BENCH_MB) --pairs $(BENCH_PAIRS)

# The comparator of the throughput goal: the same transform in pyarrow + pyiceberg (vectorised read
# and explode, one append; local/python/pyiceberg_bench.py says what it leaves out), in a venv of
# its own, on the files `make bench` generated: the large object PYBENCH_RUNS times into a fresh
# SQLite catalog, then `sessions_small-01` creating a table and 02..12 each timed as a fresh
# process (as `make bench` does). JSON lines, also in $(PYBENCH_DIR)/report.jsonl. Not in `make test`.
PYBENCH_VENV := $(DEFTUNES_CACHE)/venv-pybench
PYBENCH_REQ := local/python/requirements-bench.txt
BENCH_FILE ?= .deftunes/bench/lake/landing_zone/api/sessions/ingest_on=2020-01-01/sessions_bench.part-00000.jsonl
PYBENCH_DIR ?= .deftunes/bench/pyiceberg
PYBENCH_RUNS ?= 3
PYBENCH_SMALL_RUNS ?= 11
.PHONY: bench-python
bench-python: ## The pyarrow + pyiceberg comparator of `make bench` on its files (run `make bench` first; report in .deftunes/bench/pyiceberg/)
	@PYTHON=$(HOST_PYTHON) bash local/python/venv.sh $(PYBENCH_VENV) $(PYBENCH_REQ)
	@[ -f "$(BENCH_FILE)" ] || { echo "bench-python: no $(BENCH_FILE) (\`make bench\` generates it; or set BENCH_FILE)" >&2; exit 1; }
	@small=( $$(ls .deftunes/bench/sessions_small-*.jsonl 2>/dev/null | sort) ); \
	[ $${#small[@]} -ge 3 ] || { echo "bench-python: no .deftunes/bench/sessions_small-NN.jsonl (\`make bench\` writes them)" >&2; exit 1; }; \
	bench=$(PYBENCH_VENV)/bin/python; script=local/python/pyiceberg_bench.py; \
	mkdir -p $(PYBENCH_DIR); out=$(PYBENCH_DIR)/report.jsonl; : > $$out; \
	echo "bench-python: $(BENCH_FILE) ($$(stat -c %s "$(BENCH_FILE)") bytes), $(PYBENCH_RUNS) runs" >&2; \
	for i in $$(seq $(PYBENCH_RUNS)); do \
	  rm -rf $(PYBENCH_DIR)/large; \
	  $$bench $$script large "$(BENCH_FILE)" --dir $(PYBENCH_DIR)/large | tee -a $$out; \
	done; \
	rm -rf $(PYBENCH_DIR)/large $(PYBENCH_DIR)/small; \
	echo "bench-python: small objects, $(PYBENCH_SMALL_RUNS) runs" >&2; \
	$$bench $$script small "$${small[@]:1}" --dir $(PYBENCH_DIR)/small --runs $(PYBENCH_SMALL_RUNS) | tee -a $$out; \
	rm -rf $(PYBENCH_DIR)/small

clean: ## Remove the local demo state (.deftunes/)
	rm -rf .deftunes
