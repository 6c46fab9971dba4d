# Two entry points for a new user: `make demo` and `make test`.
# Both create .venv when missing and install what the project needs (idempotent).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
TORCH   := torch==2.13.0
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_USAGE_STATS_ENABLED  := 0
export HF_HUB_OFFLINE           := 1

.PHONY: demo test bench lint install clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first, pinned: the CPU wheel; the project's torch>=2.4 range is then already met.
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/uwav demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check uwav tests bench
