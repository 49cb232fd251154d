# `make serve` and `make test` each create/refresh .venv from pyproject.toml, then serve / test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test train leaderboard experiments bench soak image-smoke clean

PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# Where torch comes from: PyTorch's CPU build by default, so a plain machine does not download
# several GB of CUDA libraries to serve a model of a few hundred kilobytes. For CUDA (opt-in):
#   make clean; make serve TORCH_INDEX=https://download.pytorch.org/whl/cu130
# Where that index cannot be reached (offline, or a closed network), one line says so and pip
# takes torch from the machine's own wheels and package indexes instead (pip config list).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
REACHABLE := import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)

$(VENV)/.torch:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import torch' 2>/dev/null || \
	if $(BIN)/python -c '$(REACHABLE)' '$(TORCH_INDEX)/torch/' 2>/dev/null; then \
		$(PIP) --index-url $(TORCH_INDEX) 'torch==2.13.0'; \
	else \
		echo "$(TORCH_INDEX) cannot be reached: torch==2.13.0 comes from this machine's wheels and indexes"; \
		$(PIP) 'torch==2.13.0'; \
	fi
	touch $@

# Serving only: no training, test or client extras.
$(VENV)/.installed-serve: pyproject.toml $(VENV)/.torch
	$(PIP) -e .
	touch $@

# The tests also drive the client, its own light distribution (client/pyproject.toml).
$(STAMP): pyproject.toml client/pyproject.toml $(VENV)/.torch
	$(PIP) -e '.[dev]' -e ./client
	touch $(STAMP)

serve: $(VENV)/.installed-serve
	$(BIN)/python -m app

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/system/fuzz_api.py

TEACHERS := weights/names-gru.safetensors,weights/names-gru-gender.safetensors,runs/t-s1.safetensors,runs/t-s2.safetensors,runs/t-s3.safetensors

# Retrains every committed checkpoint with the command recorded in it (see the README's Training).
train: $(STAMP)
	for family in $$($(BIN)/python -c 'from model.families import family_kinds; print(*family_kinds())'); do \
		$(BIN)/python -m model.train --family $$family --data ../shared/data/names.txt \
			--out weights/names-$$family.safetensors || exit 1; \
	done
	$(BIN)/python -m model.train --family gru --data ../shared/data/names.txt \
		--out weights/names-gru-gender.safetensors --condition gender --condition-values female,male \
		--condition-dropout 0.25 --condition-guidance 1 --steps 9000 --threads 1
	# the default: a GRU-256 distilled from five GRUs (the two above and three seeds, kept in runs/)
	for seed in 1 2 3; do \
		$(BIN)/python -m model.train --family gru --data ../shared/data/names.txt \
			--out runs/t-s$$seed.safetensors --seed $$seed --threads 1 || exit 1; \
	done
	$(BIN)/python -m model.train --family gru --data ../shared/data/names.txt \
		--out weights/names-gru-distilled.safetensors --teachers $(TEACHERS) \
		--distill-weight 0.7 --dropout 0.0 --threads 1

# Rewrites docs/leaderboard.md and its plot from the committed checkpoints (no training).
leaderboard: $(STAMP)
	$(BIN)/python -m bench.leaderboard

# Reruns the seed notes' experiments and rewrites docs/experiments/ (REPORT.md + PNGs): about 10 min on 2 cores.
experiments: $(STAMP)
	$(BIN)/python -m model.experiments all

bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "bench needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench.run

# A minute of mixed load at concurrency 64 on 127.0.0.1, then stalled clients and bursts (issue 12):
# seeded bytes, statuses and server RSS in bench/SOAK.md and bench/soak.json. About 4 minutes.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

# Builds the Dockerfile against a Debian base made here and serves from it read-only, all capabilities
# dropped (deploy/image-smoke.sh). Needs root, docker.io and debootstrap; a few minutes; not in CI.
image-smoke: $(STAMP)
	PYTHON=$(abspath $(BIN)/python) bash deploy/image-smoke.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
