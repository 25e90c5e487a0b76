# Two commands for a new user: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help install deps demo test test-fast lint format bench soak simulate clean

help:
	@echo "make demo    - start the simulator, Redis and a worker; run a mixed batch end to end"
	@echo "make test    - install what the tests need and run the whole suite with coverage"
	@echo "make lint    - ruff (lint + format check) and mypy --strict on the library"
	@echo "make bench   - benchmarks (writes BENCHMARKS.md)"
	@echo "make soak    - chaos soak: 10,000 jobs, a worker SIGKILLed, Redis restarted; audit of results and costs"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[worker,test,examples,prefilter,lint]"
	@touch $(STAMP)

install: $(STAMP)

# redis-server for the tests and the demo (the suite starts its own on a free port);
# promtool for the Prometheus rule tests, chromium for the eval report's browser test (optional: they skip without them).
deps: $(STAMP)
	@scripts/ensure-redis
	@scripts/ensure-promtool
	@scripts/ensure-rabbitmq
	@scripts/ensure-chromium

demo: deps
	$(PY) scripts/demo.py

# 4 processes on 2 cores (much of the suite waits on workers and sockets); each has its own Redis.
TEST_PROCS ?= 4

test: deps
	$(PY) -m pytest -p no:cacheprovider -n $(TEST_PROCS) --durations=15 --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS)
	$(PY) scripts/coverage_gate.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-fast: deps
	$(PY) -m pytest -p no:cacheprovider -x -q -m "not slow" $(PYTEST_ARGS)

# LiteLLM pins openai<3, so its side of the comparison lives in its own venv.
.venv-litellm/.installed:
	$(PYTHON) -m venv .venv-litellm
	.venv-litellm/bin/pip install --quiet "litellm>=1.70"
	@touch $@

bench: deps .venv-litellm/.installed
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/run.py

# 10,000 jobs, a worker SIGKILLed, Redis restarted (AOF); prints the audit, exit 1 if a check fails.
# BROKER=amqp: jobs queue in RabbitMQ; STATE=cluster (with BROKER=amqp): state on a 3-master Redis Cluster.
soak: deps
	$(PY) -m tests.soak --jobs 10000 $(if $(BROKER),--broker $(BROKER)) $(if $(STATE),--state $(STATE)) $(SOAK_ARGS)

simulate: $(STAMP)
	$(VENV)/bin/llm-orch simulate --host 127.0.0.1 --port 8900

clean:
	rm -rf $(VENV) .venv-litellm .coverage .coverage.* htmlcov .pytest_cache .hypothesis
