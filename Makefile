# Two commands for a new user: `make run` and `make test` (each installs first when needed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EMBEDDED := $(BIN)/python -m loyalty_site.embedded
SCALE ?= full

.PHONY: install run test test-integration lint format bench messages clean

# The venv's own pip (Python 3.11 ships one with editable-install support) saves an upgrade.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(EMBEDDED) -- $(BIN)/python -m loyalty_site.run

test: $(STAMP)
	$(EMBEDDED) --throwaway -- $(BIN)/pytest $(PYTEST_ARGS)

# Against the servers named by DATABASE_URL and CELERY_BROKER_URL (see .ci/run).
test-integration: $(STAMP)
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(EMBEDDED) --throwaway -- $(BIN)/python -m bench --scale $(SCALE)

# Needs GNU gettext; the compiled .mo files are committed so users do not.
messages: $(STAMP)
	$(EMBEDDED) --throwaway -- $(BIN)/python manage.py makemessages -l zh_Hans -l en \
		--ignore=.venv --ignore=.data --ignore=tests --ignore=bench --no-obsolete
	$(EMBEDDED) --throwaway -- $(BIN)/python manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
