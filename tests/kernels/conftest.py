"""Kernel tests: every kernel against its torch reference, on CPU under Triton's
interpreter. TRITON_INTERPRET must be set before triton is imported (it decides at
@triton.jit time whether a kernel is compiled or interpreted), hence at conftest import."""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"

import importlib.util  # noqa: E402

import pytest  # noqa: E402

HAVE_TRITON = importlib.util.find_spec("triton") is not None
# Tests that launch kernels; the fallback and import-name tests run without triton. CI
# installs triton (Makefile), so there a missing triton fails instead of skipping.
needs_triton = pytest.mark.skipif(not HAVE_TRITON and not os.environ.get("CI"),
                                  reason="triton not installed (pip install 'reelfarm[kernels]')")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.kernels)
