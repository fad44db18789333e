# Two commands on a fresh machine: `make run` and `make test`. Both make their own venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= data
KPM ?= 1000
# `make run APP=none` keeps the network headless in a terminal; APP=edc opens the EDC instead.
# Without a terminal (CI, a service manager) `sembako up` runs headless by itself.
APP ?=
# `make serve HOST=0.0.0.0` serves the apps to the whole training room (default: this machine only).
HOST ?= 127.0.0.1
PORT ?= 8080

# The ops dashboard's browser tests drive Debian's chromium through Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium

.PHONY: run serve test install browser bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The network, then the cashier app in this terminal; quitting the app stops the network.
run: $(STAMP)
	$(BIN)/sembako up --data-dir $(DATA_DIR) --kpm $(KPM) $(if $(APP),--app $(APP))

# The cashier app (/) and the EDC (/edc) in browsers; the network must be running (`make run`).
serve: $(STAMP)
	$(BIN)/sembako serve --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

# Debian's chromium for tests/switch/test_dashboard_browser.py, installed when missing (as root, or
# through sudo). Without either the browser tests are skipped, except in CI (CI=true), where they fail.
browser:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	else echo "chromium is missing and cannot be installed here (not root, no sudo): the browser tests will be skipped" >&2; exit 0; fi; \
	echo "installing Debian's chromium for the dashboard's browser tests"; \
	$$SUDO apt-get update -qq && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

# Test files run TEST_JOBS at a time (pytest-xdist), each file whole in one worker (module fixtures).
TEST_JOBS ?= 2
test: $(STAMP) browser
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/bank_purchase.py --seconds 20
	$(BIN)/python bench/disbursement.py --kpm 1000000

clean:
	rm -rf $(VENV) $(DATA_DIR) .pytest_cache
