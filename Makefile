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

.PHONY: run serve test install bench clean

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

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/bank_purchase.py --seconds 20
	$(BIN)/python bench/disbursement.py --kpm 1000000

clean:
	rm -rf $(VENV) $(DATA_DIR) .pytest_cache
