# Two commands on a fresh machine:  make demo   and   make test
# Both create the virtual environment in .venv on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is pinned first so no other requirement can pull a different (CUDA) build;
# on these machines pip takes torch 2.13.0 from a local CPU wheel.
TORCH  ?= torch==2.13.0

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/reelfarm render examples/trailer.yaml -o out/trailer.mp4

# MKL_CBWR=COMPATIBLE: MKL's CPU results depend on memory alignment; tests that assert
# bit-exact equality across load paths need reproducible kernels.
test: $(BIN)/.installed
	MKL_CBWR=COMPATIBLE $(BIN)/python -m pytest -q
	$(BIN)/lint-imports

lint: $(BIN)/.installed
	$(BIN)/ruff check farm serving kernels tests bench
	$(BIN)/lint-imports

bench: $(BIN)/.installed
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) out .pytest_cache
