# Every target installs what it needs on first use; re-running is cheap.
SHELL := /bin/bash
PY ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV_STAMP := .venv/.synced

.PHONY: test lint bench dev deploy format

.tools/bin/uv:
	$(PY) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

$(VENV_STAMP): pyproject.toml uv.lock shared/pyproject.toml | $(UV)
	$(UV) sync --frozen --quiet
	@touch $@

test: $(VENV_STAMP)
	$(UV) run --frozen pytest

lint: $(VENV_STAMP)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

format: $(VENV_STAMP)
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .
