# jghub — two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install the project into it first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO_ARGS ?= --once
PYTEST_ARGS ?=

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,sm]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/jghub demo $(DEMO_ARGS)

# The dashboard's browser tests drive Debian's chromium (Playwright with executable_path):
# installed here when missing (CI runs as root on Debian), with a CJK font for screenshots.
CHROMIUM ?= /usr/bin/chromium

test: $(STAMP)
	@test -x $(CHROMIUM) || (apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy hub security contracts monitoring

# Benchmarks (not tests): need wrk (apt-get install -y wrk); py-spy for --profile.
# BENCH_ARGS=--quick: shorter runs, fewer records (a few minutes in all).
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) bench/ingest.py $(BENCH_ARGS)
	$(PY) bench/signed_ingest.py $(BENCH_ARGS)
	$(PY) bench/delivery.py $(BENCH_ARGS)
	$(PY) bench/latency.py $(BENCH_ARGS)
	$(PY) bench/queue_memory.py $(BENCH_ARGS)
	$(PY) bench/mapping.py $(BENCH_ARGS)
	$(PY) bench/signing.py $(BENCH_ARGS)
	$(PY) bench/sharing_query.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .jghub-demo .pytest_cache .mypy_cache .ruff_cache
