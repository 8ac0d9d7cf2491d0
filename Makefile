# `make run` runs the whole system on embedded defaults; `make test` runs every test. Both set themselves up.
# Python 3.11 or newer: prefer an explicit 3.11 where one is installed (pyenv, Debian), else python3.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install system-deps run test lint schemas bench clean

# Debian packages the tests need (one a line, so that additions merge cleanly): installed when missing and root,
# else named so a person can install them.
SYSTEM_PACKAGES := \
	prometheus \
	chromium \

system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "make: install these Debian packages first: $$missing" >&2; exit 1; fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/moteplass dev

# pytest exits 5 when it collected no test: that must fail loudly, never pass as an empty green run.
test: install system-deps
	$(BIN)/lint-imports
	$(BIN)/pytest -m "not faults" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; test $$rc -eq 0
	# The fault suite (whole systems of processes on a private RabbitMQ node) in a pytest process of its own, so that
	# its figures table ends the output and no state of the in-process tests lingers into its timing.
	$(BIN)/pytest -m faults $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: the fault suite collected no tests" >&2; fi; exit $$rc

# The architecture contracts and the generated message contract, without running the tests.
lint: install
	$(BIN)/lint-imports
	$(BIN)/moteplass schemas --check

schemas: install
	$(BIN)/moteplass schemas

# The self-contained benchmarks; bench/system.py measures a running `make run` (see the README).
bench: install
	$(BIN)/python bench/registration.py
	$(BIN)/python bench/comments.py
	$(BIN)/python bench/notifications.py

clean:
	rm -rf $(VENV) .pytest_cache
