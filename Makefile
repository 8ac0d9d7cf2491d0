# `make run` runs the whole system on embedded defaults; `make test` runs every test. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test lint schemas bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/moteplass dev

test: install
	$(BIN)/lint-imports
	$(BIN)/pytest $(PYTEST_ARGS)

schemas: install
	$(BIN)/moteplass schemas

bench: install
	$(BIN)/python bench/registration.py

clean:
	rm -rf $(VENV) .pytest_cache
