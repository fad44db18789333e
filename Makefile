# Two commands on a fresh machine: `make run` and `make test`. Both make their own venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= data
KPM ?= 1000

.PHONY: run test install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/sembako up --data-dir $(DATA_DIR) --kpm $(KPM)

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/bank_purchase.py --seconds 20
	$(BIN)/python bench/disbursement.py --kpm 1000000

clean:
	rm -rf $(VENV) $(DATA_DIR) .pytest_cache
