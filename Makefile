# Two entry points for a new user: `make demo` and `make test`.
# Both create .venv when missing and install what the project needs (idempotent).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
TORCH   := torch==2.13.0

.PHONY: demo test bench lint install clean-demo

# torch first, pinned: the CPU wheel (an unpinned torch pulls a multi-GB CUDA build); the project's
# torch>=2.4 range is then met, and torch is named again so no dependency can move it. The extract extra
# is installed so the CLIP/CLAP extraction tests run too; laion_clap goes in without its metadata's pins
# (numpy<2, training-only packages): the packages its model code imports are in the extract extra.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test,extract]' $(TORCH)
	$(BIN)/pip install -q --no-deps laion_clap==1.1.7
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# The main job on the embedded synthetic set: data -> generator -> pseudo labels -> sweep -> final runs.
# Each step skips work whose output is already there (the synthetic set, the logits cache).
demo: $(STAMP)
	test -f runs/demo/data/synthetic.json || $(BIN)/uwav data synth runs/demo/data --size small
	test -f runs/demo/pipeline/generator/best.pt || $(BIN)/uwav pretrain configs/demo.yaml
	$(BIN)/uwav pseudo configs/demo.yaml
	$(BIN)/uwav sweep sweeps/demo.yaml
	$(BIN)/uwav train --best sweeps/demo.yaml --seeds 3

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check uwav tests bench
