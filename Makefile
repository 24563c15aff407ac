# Two commands on a fresh machine:  `make run` (main job on the embedded SYNTHETIC dataset)  and  `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp

.PHONY: install system-deps run serve test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[text,dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m search.run --model als
	$(BIN)/python -m search.run --model bpr
	$(BIN)/python -m search.promote
	$(BIN)/python -m reports.compare

# Serve cf-recommender@champion on 127.0.0.1:5000; other options: make serve ARGS="--port 5001"
serve: install
	$(BIN)/python -m search.serve $(ARGS)

system-deps:
	bash scripts/system-deps.sh

test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/mypy core search spaces reports
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core search spaces reports

bench: install
	$(BIN)/python bench/evaluate_speed.py
	$(BIN)/python bench/bpr_throughput.py
	$(BIN)/python bench/search_grid.py
	$(BIN)/python bench/tpe_als.py

clean:
	rm -rf $(VENV) .pytest_cache
