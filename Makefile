# A newcomer's entry points: `make dev` to see it work, `make test` to check everything.
# Everything the project needs is installed from here: Python packages into .venv, Debian's
# redis-server (and a JDK and Maven if missing), and the Kafka broker's jars through mvn.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps kafka dev test test-fast bench lint format typecheck schemas lock clean image

install: system-deps $(STAMP) kafka

# Root on Debian: apt-get works as is. Only what is missing is installed. buildah and mmdebstrap
# build the image without a Docker engine or a registry (`make image`, tests/image).
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v kcat >/dev/null || missing="$$missing kcat"; \
	command -v buildah >/dev/null || missing="$$missing buildah"; \
	command -v crun >/dev/null || missing="$$missing crun"; \
	command -v mmdebstrap >/dev/null || missing="$$missing mmdebstrap"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@# promtool checks and unit-tests the alert rules (tests/ops/test_alert_rules.py); Debian ships
	@# it in the prometheus package. Without its Recommends: no node exporter comes along.
	@command -v promtool >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

# pyproject.toml says which versions the code accepts; constraints.txt pins the set last tested,
# so a fresh machine installs what CI passed with, not whatever was released since.
# kit/ is the client kit's own distribution (session-worker-client), which the worker depends on.
$(STAMP): pyproject.toml kit/pyproject.toml VERSION constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ./kit -e '.[dev,otel]'
	@# hatch copies the kit's two packages even into an editable install (they lie outside kit/);
	@# its .pth already puts the checkout on the path, so without the copies edits take effect.
	rm -rf $(VENV)/lib/python3*/site-packages/contracts $(VENV)/lib/python3*/site-packages/session_client
	touch $@

# The newest versions pyproject.toml accepts, into constraints.txt; run `make test` before
# committing it.
lock:
	rm -rf .cache/lock-venv
	$(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/pip install -q --upgrade pip
	.cache/lock-venv/bin/pip install -q -e ./kit -e '.[dev,otel]'
	.cache/lock-venv/bin/pip freeze --exclude-editable > constraints.txt
	rm -rf .cache/lock-venv

# Resolves the broker's jars with mvn (cached in ~/.m2 and .cache/kafka) and warms the JVM.
kafka: $(STAMP)
	$(BIN)/python -m devenv resolve --warm

dev: install
	$(BIN)/python -m devenv demo

test: install lint typecheck
	$(BIN)/python -m contracts.schema check
	$(BIN)/python -m contracts.asyncapi check
	$(BIN)/python -m pytest

# Ceiling, floor and the worker on the same broker and Redis; writes bench/results/<date>.md.
# BENCH_ARGS=--quick for a ~2 minute run.
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

# session-worker:<version in pyproject.toml>: docker build where an engine answers, otherwise
# buildah; on the official Python image when it can be pulled, otherwise on one made here from
# Debian's packages (cached in .cache/images). BASE_IMAGE=debian forces that one, any other value
# is used as the base. See deploy/image/build.py.
BASE_IMAGE ?=
image: system-deps
	$(PYTHON) -m deploy.image.build --base '$(BASE_IMAGE)'

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not chaos"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy

schemas: $(STAMP)
	$(BIN)/python -m contracts.schema write
	$(BIN)/python -m contracts.asyncapi write

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
