# Quick start: `make run` (sets everything up, serves on http://127.0.0.1:8000) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-rest bench venv docker image node page lint docs clean

run: venv image page
	$(PY) -m codex

# `make test`: the unit tests first (tests/unit/: seconds, no Docker, no Node), and only
# if they pass everything else (tests/e2e/, security/, isolation/, deploy/, browser/),
# after setting up the engine, the image and the Node packages. PYTEST_ARGS goes to
# both runs; a run that PYTEST_ARGS leaves without tests (pytest's status 5) passes.
test: test-unit
	@$(MAKE) --no-print-directory test-rest

# The unit tests use neither Hypothesis nor Schemathesis: without their plugins pytest
# starts ~2 s sooner.
UNIT_PLUGINS := -p no:schemathesis -p no:hypothesispytest

test-unit: venv
	$(PY) -m pytest $(UNIT_PLUGINS) tests/unit $(PYTEST_ARGS) || [ $$? -eq 5 ]

# The slowest tests are listed at the end: the suite's time is a budget (CI: 15 min).
test-rest: venv image node page
	$(PY) -m pytest --ignore=tests/unit --durations=15 $(PYTEST_ARGS) || [ $$? -eq 5 ]

# The benchmarks (not part of make test): one command, a table, JSON in bench/results/.
bench: venv image
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench.bench $(BENCH_ARGS)

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

# The page's browser files (xterm.js, socket.io-client, CodeMirror 5), pinned in
# package-lock.json, copied into static/vendor/ (gitignored): served by CodeX, no CDN.
page:
	@if command -v npm >/dev/null; then \
		{ [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error; } && \
		mkdir -p static/vendor && \
		cp node_modules/@xterm/xterm/lib/xterm.js node_modules/@xterm/xterm/css/xterm.css \
		   node_modules/@xterm/addon-fit/lib/addon-fit.js \
		   node_modules/@xterm/addon-web-links/lib/addon-web-links.js \
		   node_modules/@xterm/addon-image/lib/addon-image.js \
		   node_modules/socket.io-client/dist/socket.io.min.js \
		   node_modules/codemirror/lib/codemirror.js node_modules/codemirror/lib/codemirror.css \
		   node_modules/codemirror/mode/python/python.js \
		   node_modules/codemirror/addon/selection/active-line.js \
		   node_modules/codemirror/addon/edit/matchbrackets.js static/vendor/; \
	else echo "npm not found: the page at / cannot load its editor and terminal (install Node.js)"; fi

# ruff and mypy come from requirements-dev.txt, installed in the venv by `venv`.
lint: venv
	$(VENV)/bin/ruff check codex tests bench
	$(VENV)/bin/ruff format --check codex tests bench
	$(VENV)/bin/mypy codex

docs: venv
	$(PY) -m codex --config-docs > docs/configuration.md

clean:
	rm -rf $(VENV) tests/node/node_modules .pytest_cache .mypy_cache .ruff_cache
