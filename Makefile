# The README's two commands, `make run` and `make test`, plus lint and bench helpers.
# Everything runs from .venv, created with python3 on first use. The install steps are
# file-timestamp targets, so they run again only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
URL := http://127.0.0.1:8000

.PHONY: run test lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Runtime dependencies only (what `make run` needs).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e .
	touch $@

# Plus the dev extra: pytest, linters, check-jsonschema.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/helpdesk migrate
	$(BIN)/helpdesk demo-data
	@echo
	@echo "  Helpdesk inbox: $(URL)/inbox"
	@echo "  Demo login:     demo@helpdesk.local / demo"
	@echo "  API docs:       $(URL)/schema"
	@echo
	$(BIN)/helpdesk serve

# The whole suite. PostgreSQL and Redis variants run when HELPDESK_TEST_DATABASE_URL and
# HELPDESK_TEST_REDIS_URL are set (see README); `.ci/run` sets both.
# Three test processes, each taking whole files (--dist loadfile): most tests wait on
# real servers and subprocesses, so three share two cores well (about 7 minutes).
TEST_WORKERS ?= 3

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy helpdesk

# Benchmarks are never part of `make test`; results go to bench/RESULTS.md by hand.
bench: $(VENV)/.installed-dev
	@found=0; for script in bench/*.py; do \
		[ -e "$$script" ] || continue; found=1; \
		echo "== $$script"; $(BIN)/python "$$script" || exit $$?; \
	done; \
	[ $$found = 1 ] || echo "no benchmarks in bench/ yet"
