# Quick start: `make run` (sets everything up, serves on http://127.0.0.1:8000) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test venv docker image node lint docs clean

run: venv image
	$(PY) -m codex

test: venv image node
	$(PY) -m pytest $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Installs and starts a Docker engine when none answers (as root), or says what to do.
docker:
	@bash scripts/ensure-docker.sh

# Builds the sandbox image if it is missing or out of date (works without a registry).
image: docker
	@bash sandbox-image/build.sh

node:
	@if command -v npm >/dev/null; then \
		cd tests/node && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error; }; \
	else echo "npm not found: the socket.io-client test will be skipped"; fi

lint: venv
	$(VENV)/bin/ruff check codex tests
	$(VENV)/bin/ruff format --check codex tests
	$(VENV)/bin/mypy codex

docs: venv
	$(PY) -m codex --config-docs > docs/configuration.md

clean:
	rm -rf $(VENV) tests/node/node_modules .pytest_cache .mypy_cache .ruff_cache
