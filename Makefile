# mlyard: every target creates .venv and installs the project when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench postgres browser screenshots azurite lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## demo: create ./demo-workspace, start the server, register the attrition data and environment, run the training
## pipeline with live progress, show the registered model and its metrics, run it again (every step reused), deploy
## the model to an online endpoint (blue: no-code; green: score.py at 0%), invoke it, print the curl line, score the
## drifted production files in batch; then the loop: send them to the endpoint, run the attrition monitor on what blue
## collected, print the features that drifted, follow the retraining the alert's trigger started to its new model
## version, stop.
demo: $(STAMP)
	@bash scripts/demo.sh

## postgres: install PostgreSQL 15 from Debian's packages when missing (the store tests run against it).
postgres:
	@bash scripts/install-postgres.sh

## azurite: install Azurite (the Azure Storage emulator) from the npm registry into .tools/azurite when missing (the
## Azure Blob datastore tests start their own on free loopback ports).
azurite:
	@bash scripts/install-azurite.sh

## browser: install Debian's chromium when missing (the studio's browser tests drive it with Playwright).
browser:
	@bash scripts/install-browser.sh

## screenshots: the studio's main pages, as PNG files in docs/images/ (a real server, headless Chromium).
screenshots: $(STAMP) browser
	$(PY) -m tests.studio.screenshots docs/images

## test: the whole suite, SQLite and PostgreSQL, end-to-end tests included.
test: $(STAMP) postgres browser azurite
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

## bench: the benchmarks against their peers; prints one table (never part of `make test`).
bench: $(STAMP)
	$(PY) benchmarks/run.py && $(PY) benchmarks/batch.py && $(PY) benchmarks/automation.py && $(PY) benchmarks/monitoring.py && $(PY) benchmarks/studio.py && $(PY) benchmarks/sweeps.py && $(PY) benchmarks/lifecycle.py && $(PY) benchmarks/scaleout.py

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy src

clean:
	rm -rf $(VENV) demo-workspace .pytest_cache .mypy_cache .ruff_cache
