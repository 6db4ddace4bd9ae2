# New users need two targets: `make demo` and `make test`. Both set up .venv/ first.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmemo-setup

.PHONY: setup demo test test-all test-ui lint clean-runs

setup: $(STAMP)

$(STAMP): scripts/setup.sh requirements/lock.txt pyproject.toml
	bash scripts/setup.sh
	touch $@

## Train the speech-only, text-only, fused and classical models on the demo corpus; print the table.
demo: setup
	$(PY) -m mmemo.cli demo

## The default test suite (under 10 minutes on 2 CPU cores); installs PostgreSQL for the store tests when it can.
test: setup
	bash scripts/setup_postgres.sh
	$(PY) -m pytest

## Everything, including tests marked slow.
test-all: setup
	bash scripts/setup_postgres.sh
	$(PY) -m pytest -m "slow or not slow"

## The web UI in headless Chromium (installs Debian's chromium + chromium-driver when it can).
test-ui: setup
	bash scripts/setup_browser.sh
	$(PY) -m pytest -m browser

## ruff over the whole repository (rule set in pyproject.toml; docs/architecture.md says why).
lint: setup
	$(VENV)/bin/ruff check .

clean-runs:
	rm -rf runs
