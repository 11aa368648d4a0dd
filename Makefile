# Every target installs what it needs on first use; re-running is cheap.
SHELL := /bin/bash
PY ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
VENV_STAMP := .venv/.synced
NPM ?= npm
NODE_STAMP := node_modules/.stamp
# Pinned wrangler (package.json) run by the pinned Node 22 from node_modules (wrangler 4 needs
# Node >= 22; the system node may be older): scripts/wrangler.sh = node_modules/.bin/node wrangler.js
WRANGLER := $(CURDIR)/scripts/wrangler.sh
ENV ?=
UPSTREAM ?=
CONFIGS := isbndb_worker books_api_proxy cache_warmer

.PHONY: test lint bench dev deploy format vendor dry-run

$(CURDIR)/.tools/bin/uv:
	$(PY) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

$(VENV_STAMP): pyproject.toml uv.lock shared/pyproject.toml | $(UV)
	$(UV) sync --frozen --quiet
	@touch $@

test: $(VENV_STAMP) $(NODE_STAMP)
	$(UV) run --frozen pytest

lint: $(VENV_STAMP)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

# Figures for README's "Performance and cost": printed, and written to bench/results.json.
# make bench [WORKERD_ONLY=1] [NO_WORKERD=1] [PROFILE=1] [NO_STARTUP=1]: the workerd section alone
# (the other sections keep their last figures), without it, with the in-workerd profile of a hit,
# or without the workerd start-up runs (for quick iterations).
BENCH_PATH := .:tests:tests/harness/stub:workers/isbndb_worker:workers/books_api_proxy:workers/cache_warmer
BENCH_ARGS := $(if $(WORKERD_ONLY),--workerd-only) $(if $(NO_WORKERD),--no-workerd) $(if $(PROFILE),--profile) $(if $(NO_STARTUP),--no-startup)
bench: $(VENV_STAMP) $(NODE_STAMP)
	PATH="$(dir $(UV)):$$PATH" PYTHONPATH=$(BENCH_PATH) $(UV) run --frozen python -m bench $(BENCH_ARGS)

format: $(VENV_STAMP)
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

$(NODE_STAMP): package.json package-lock.json
	$(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

# python_modules/ for the Workers runtime: `pywrangler sync`, or offline the locked pure wheels
# (devtools/workerd_runtime.py; `make dev`, the e2e tests and `make deploy` call it themselves).
vendor: $(VENV_STAMP)
	PATH="$(dir $(UV)):$$PATH" $(UV) run --frozen python devtools/workerd_runtime.py vendor

# Offline validation of every config x env (what tests/test_configs.py also runs).
dry-run: $(NODE_STAMP)
	@set -e; for c in $(CONFIGS); do for e in "" staging production fixtures; do \
	  echo "--> $$c $${e:-dev}"; \
	  $(WRANGLER) deploy --dry-run --outdir .wrangler/dry-run/$$c$${e:+-$$e} \
	    -c wrangler.toml.d/$$c.toml $${e:+--env $$e} >/dev/null; done; done

# make dev [UPSTREAM=fixtures] [PRIMARY=proxy|isbndb|warmer] [PORT=8787]
dev: $(VENV_STAMP) $(NODE_STAMP)
	UV="$(UV)" WRANGLER="$(WRANGLER)" UPSTREAM="$(UPSTREAM)" scripts/dev.sh

# make deploy ENV=staging|production
deploy: $(VENV_STAMP) $(NODE_STAMP)
	UV="$(UV)" WRANGLER="$(WRANGLER)" scripts/deploy.sh "$(ENV)"
