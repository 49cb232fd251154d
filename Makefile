# `make serve` and `make test` each create/refresh .venv from pyproject.toml, then serve / test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test train experiments bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/python -m app

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

train: $(STAMP)
	$(BIN)/python -m model.train --data ../shared/data/names.txt --out weights/names-mlp.safetensors

# Reruns the seed notes' experiments and rewrites docs/experiments/ (REPORT.md + PNGs): about 10 min on 2 cores.
experiments: $(STAMP)
	$(BIN)/python -m model.experiments all

bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "bench needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
