# Two commands on a fresh machine with Python 3.11:  make book  |  make test
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= book,deploy,dev
# Kernels must draw figures inline: a user's MPLBACKEND (e.g. Agg) would empty every figure output.
unexport MPLBACKEND
# Print how long each stage took: $(call stage,NAME,COMMAND)
stage = @s=$$(date +%s); echo "==> $(1)"; $(2); echo "==> $(1) took $$(( $$(date +%s) - s )) s"

.PHONY: help env book notebooks site test test-package test-notebooks test-site chromium data bench pretrained teacher ablation clean

help:
	@echo "make book       set up .venv, execute notebooks that lack outputs, build the site into _build/html"
	@echo "make test       set up .venv and run every test (package, nbval, site build -W, browser, papermill)"
	@echo "make notebooks  re-execute every chapter and store its outputs in place"
	@echo "make data       write the default synthetic data set to data/synthetic"
	@echo "make bench      run the benchmarks (JSON on stdout)"
	@echo "make pretrained train the shipped small DepthNet (bore_depth_lite/assets), with its metrics"
	@echo "make teacher    train the embedded semantic teacher on the synthetic labels (runs/teacher)"
	@echo "make ablation   the paper's ablations on the synthetic world (bench/ablation.yaml)"

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(call stage,environment,\
	  { [ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV); } && \
	  $(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip && \
	  $(BIN)/python -m pip install -q --disable-pip-version-check -e ".[$(EXTRAS)]" && \
	  touch $@)
	@du -sh $(VENV) | awk '{print "==> environment size " $$1}'

notebooks: env
	$(call stage,execute all notebooks,$(BIN)/python book/execute.py)

site: env
	$(call stage,build the website,$(BIN)/jupyter-book build . -W --keep-going)

book: env
	$(call stage,execute notebooks without stored outputs,$(BIN)/python book/execute.py --missing)
	$(call stage,build the website,$(BIN)/jupyter-book build . -W --keep-going)
	@echo "Open _build/html/index.html in a browser (or: $(BIN)/python -m http.server -d _build/html 8000)."

chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium is missing and cannot be installed here (not root): the browser test will say so"; }

test-package: env
	$(call stage,package tests,$(BIN)/pytest -q tests -m "not site")

test-notebooks: env
	$(call stage,notebooks (nbval strict),$(BIN)/pytest -q --nbval book)

test-site: env chromium
	$(call stage,website build -W,$(BIN)/jupyter-book build . -W --keep-going -q)
	$(call stage,browser test,$(BIN)/pytest -q tests -m site)

test: env
	@s=$$(date +%s); \
	$(MAKE) --no-print-directory test-package test-notebooks test-site; \
	echo "==> make test took $$(( $$(date +%s) - s )) s"

data: env
	$(call stage,synthetic data set,$(BIN)/python data_scripts/make_synthetic.py --out data/synthetic)

pretrained: env
	$(call stage,train the shipped DepthNet,$(BIN)/python data_scripts/make_pretrained.py)

teacher: env
	$(call stage,train the semantic teacher,$(BIN)/python -m bore_depth_lite.train --teacher-only --out runs/teacher)

ablation: env
	$(call stage,ablation sweep,$(BIN)/python bench/ablation.py --config bench/ablation.yaml)

bench: env
	@for b in bench/bench_*.py; do $(BIN)/python $$b; done

clean:
	rm -rf _build
