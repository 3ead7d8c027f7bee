# Main commands: `make demo`, `make test` and `make lint`. Each creates .venv when missing and installs the project.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned in the same pip command as everything else: a CPU wheel of 2.13.0 lies on disk here;
# without the pin pip would pull a multi-GB CUDA build.
TORCH := torch==2.13.0
SHARED_DATA := $(abspath ../shared/datasets)
ifneq ($(wildcard $(SHARED_DATA)),)
export FRACTAL_DATA ?= $(SHARED_DATA)
endif
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test test-install lint install bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH)" -e ".[all,test,lint]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/fractal demo

# one pytest-xdist worker per core; a test file stays on one worker, so its module fixtures are built once
test: install
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not install"

# what a user without the full install gets: an export loaded in a venv with torch + sentence-transformers
# only (no fractal_embeddings), and the built wheel installed without extras (size, imports, one-line errors);
# builds two throwaway venvs (torch pinned as above), so it is a step of its own in .ci/run
test-install: install
	$(BIN)/python -m pytest -q -rP -m install tests/test_install.py

# ruff (lint + format check) over src/tests/bench, mypy over src/ (settings in pyproject.toml)
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/embed_throughput.py
	$(BIN)/python bench/knn_speed.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/stacked_seeds.py
	$(BIN)/python bench/recipe_cost.py
	$(BIN)/python bench/sweep_main.py
	$(BIN)/python bench/quick_grids.py
	$(BIN)/python bench/train_scale.py
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) .pytest_cache
