# dr_platform: the commands a developer and CI use. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.lock 2>/dev/null | cut -c1-12)

.PHONY: install migrate demo demo-check demo-data test lint bench clean

$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "dr_platform needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version)."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo-data: migrate
	$(BIN)/python manage.py demo_data

# The platform on its embedded defaults (SQLite, filesystem broker, a real worker and beat).
demo: demo-data
	$(BIN)/python manage.py demo

# The same, headless: check every role's main pages and a task round trip, then stop.
demo-check: demo-data
	$(BIN)/python manage.py demo --check

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python manage.py makemigrations --check --dry-run >/dev/null || \
		{ echo "Models and migrations disagree: run manage.py makemigrations."; exit 1; }
	$(BIN)/pytest

bench: install
	@set -e; for script in benchmarks/[!_]*.py; do \
		echo "== $$script"; $(BIN)/python $$script; done

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
