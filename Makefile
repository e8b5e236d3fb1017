# Two commands on a fresh machine with Python 3.11:  make book  |  make test
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= book,deploy,dev
# Kernels must draw figures inline: a user's MPLBACKEND (e.g. Agg) would empty every figure output.
unexport MPLBACKEND
# Print how long each stage took: $(call stage,NAME,COMMAND). `|| exit`: COMMAND is often `a && b`, and
# `set -e` ignores a failure anywhere but in the last command of such a list: without it a failing `a`
# would skip `b` and the stage would still succeed.
stage = @s=$$(date +%s); echo "==> $(1)"; { $(2); } || exit $$?; echo "==> $(1) took $$(( $$(date +%s) - s )) s"

.PHONY: help env book notebooks site test test-package test-notebooks test-site chromium data bench pretrained results teacher ablation clean

help:
	@echo "make book       set up .venv, execute notebooks that lack outputs, build the site into _build/html"
	@echo "make test       set up .venv and run every test (package, nbval, site build -W, browser, papermill)"
	@echo "make notebooks  re-execute every chapter and store its outputs in place"
	@echo "make data       write the default synthetic data set to data/synthetic"
	@echo "make bench      run the benchmarks (JSON on stdout)"
	@echo "make pretrained train the shipped DepthNets: tiny driving and indoor, paper driving (bore_depth_lite/assets), with their metrics"
	@echo "make results    after make pretrained: regenerate the bench results that read the shipped networks (bench/results)"
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

# Two pytest workers on a 2-core machine: many tests wait on a kernel, a subprocess or one thread.
# --dist loadscope keeps a module on one worker, so a module-scoped fixture (the reader's venv
# of test_chapters_alone) is built once. TEST_WORKERS=0 runs the tests in this process.
TEST_WORKERS ?= 2
test-package: env
	$(call stage,package tests,$(BIN)/pytest -q tests -m "not site" -n $(TEST_WORKERS) --dist loadscope)

# nbval re-executes the chapters on another CPU kernel path than the one that stored their outputs
# (1 thread, the CPU's widest ATen and oneDNN kernels), so that an output which holds only on one
# CPU fails here and not on a reader's machine (book/CONTRIBUTING.md): oneDNN up to SSE4.1 and 2
# threads everywhere; ATen's scalar kernels too, except in the two training chapters, where 2
# threads already change every printed loss and the scalar kernels would cost ~1.5x the time.
# A cell that runs past the limit fails with its name instead of hanging.
KERNEL_PATH := ONEDNN_MAX_CPU_ISA=SSE41 BORE_DEPTH_THREADS=2
TRAINING_CHAPTERS := book/05_training.ipynb book/06_distillation.ipynb
CELL_TIMEOUT_S ?= 1800
test-notebooks: env
	$(call stage,notebooks (nbval strict; another CPU kernel path),\
	  env $(KERNEL_PATH) ATEN_CPU_CAPABILITY=default $(BIN)/pytest -q --nbval-cell-timeout=$(CELL_TIMEOUT_S) \
	    --nbval $(filter-out $(TRAINING_CHAPTERS),$(wildcard book/*.ipynb)) && \
	  env $(KERNEL_PATH) $(BIN)/pytest -q --nbval-cell-timeout=$(CELL_TIMEOUT_S) --nbval $(TRAINING_CHAPTERS))

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
	$(call stage,train the shipped DepthNets,$(BIN)/python data_scripts/make_pretrained.py --name tiny-driving && \
	  $(BIN)/python data_scripts/make_pretrained.py --name tiny-indoor && \
	  $(BIN)/python data_scripts/make_pretrained.py --name paper-driving)

# Every committed result in bench/results that reads a shipped network, regenerated in place (run it
# after `make pretrained` changes a network, then re-execute the chapters that show it). About an hour on
# 2 cores, most of it video.py's memory measurement and the generalisation re-renders.
R := bench/results
results: env
	$(call stage,bench results of the shipped networks,\
	  $(BIN)/python bench/generalisation.py --name tiny-driving --out $(R)/generalisation_tiny_driving.json --overwrite && \
	  $(BIN)/python bench/generalisation.py --name tiny-indoor --out $(R)/generalisation_tiny_indoor.json --overwrite && \
	  $(BIN)/python bench/pose_gaps.py --preset driving --out $(R)/pose_gaps_tiny_driving.json && \
	  $(BIN)/python bench/pose_gaps.py --preset indoor --gaps 1 2 4 8 --out $(R)/pose_gaps_tiny_indoor.json && \
	  $(BIN)/python bench/error_by_depth.py --out $(R)/error_by_depth_driving.json --overwrite && \
	  $(BIN)/python bench/error_by_depth.py --world indoor --networks tiny-indoor --bins 0.1 1 2 3 4 6 \
	    --out $(R)/error_by_depth_indoor.json --overwrite && \
	  $(BIN)/python bench/boundary_ceiling.py --out $(R)/boundary_ceiling.json --overwrite && \
	  $(BIN)/python bench/boundary_contrast.py --world driving --out $(R)/boundary_contrast_driving.json --overwrite && \
	  $(BIN)/python bench/boundary_contrast.py --world indoor --out $(R)/boundary_contrast_indoor.json --overwrite && \
	  $(BIN)/python bench/metric_scale.py > $(R)/.metric_scale.tmp && mv $(R)/.metric_scale.tmp $(R)/metric_scale_tiny_driving.json && \
	  $(BIN)/python bench/video.py --out $(R)/video.json)

teacher: env
	$(call stage,train the semantic teacher,$(BIN)/python -m bore_depth_lite.train --teacher-only --out runs/teacher)

ablation: env
	$(call stage,ablation sweep,$(BIN)/python -m bore_depth_lite.ablation --config bench/ablation.yaml)

bench: env
	@for b in bench/bench_*.py; do $(BIN)/python $$b; done

clean:
	rm -rf _build
