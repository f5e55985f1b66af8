# Two commands on a fresh machine:  make demo   and   make test
# Both create the virtual environment in .venv on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is pinned first so no other requirement can pull a different (CUDA) build;
# on these machines pip takes torch 2.13.0 from a local CPU wheel.
TORCH  ?= torch==2.13.0
# The Node.js test client and the buf CLI (both from npm) live here.
NODE   := clients/node
# playwright-core (npm; drives Debian's chromium, downloads no browser) for tests/web.
WEBTESTS := clients/web-tests
PROTOS := $(wildcard protos/reelfarm/*/*.proto)

.PHONY: demo test lint lint-protos node webtests chart bench clean vllm dali

# Reinstalling regenerates the API code from protos/ (setup.py), hence the protos here.
# The `kernels` extra is triton (it installs next to CPU torch without changing it), so
# tests/kernels run the Triton kernels under its CPU interpreter.
$(BIN)/.installed: pyproject.toml setup.py $(PROTOS)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev,kernels]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/reelfarm render examples/trailer.yaml -o out/trailer.mp4

# MKL_CBWR=COMPATIBLE: MKL's CPU results depend on memory alignment; tests that assert
# bit-exact equality across load paths need reproducible kernels.
test: $(BIN)/.installed
	MKL_CBWR=COMPATIBLE $(BIN)/python -m pytest -q
	$(BIN)/lint-imports

lint: $(BIN)/.installed lint-protos
	$(BIN)/ruff check farm serving kernels tests bench
	$(BIN)/lint-imports

# The Helm chart (helm/reelfarm): `helm lint --strict`, `helm template` of the default, tiny
# and 64-GPU values, every rendered object validated strictly (Kubernetes schemas, KubeRay's
# RayService CRD, Ray Serve's config schema, ServingConfig). No helm binary or cluster needed.
chart: $(BIN)/.installed
	$(BIN)/python -m tests.k8s.chartcheck

$(NODE)/node_modules/.installed: $(NODE)/package.json $(NODE)/package-lock.json
	cd $(NODE) && npm ci --no-audit --no-fund
	touch $@

node: $(NODE)/node_modules/.installed

$(WEBTESTS)/node_modules/.installed: $(WEBTESTS)/package.json $(WEBTESTS)/package-lock.json
	cd $(WEBTESTS) && npm ci --no-audit --no-fund
	touch $@

webtests: $(WEBTESTS)/node_modules/.installed

# buf lint, STANDARD rules (exceptions documented in buf.yaml)
lint-protos: node
	$(NODE)/node_modules/.bin/buf lint

# vLLM's CPU build in its own venv, .venv-vllm (cached per version; see .ci/vllm-env): for
# `reelfarm direct --llm-model` and the real-engine tests in tests/story.
vllm:
	.ci/vllm-env

# NVIDIA DALI in its own venv, .venv-dali (cached; see .ci/dali-env): the DALI media-decode
# backend's tests run farm/media/dali_decode.py in it (CPU: images, VP8, VP9).
dali:
	.ci/dali-env

bench: $(BIN)/.installed
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .venv-vllm .venv-dali out .pytest_cache $(NODE)/node_modules $(WEBTESTS)/node_modules
	rm -f protos/reelfarm/_generated.txt protos/reelfarm/*/*_pb2*.py*
