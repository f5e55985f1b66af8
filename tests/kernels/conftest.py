"""Kernel tests: every kernel against its torch reference, on CPU under Triton's
interpreter. @triton.jit decides when it decorates whether a function is compiled or
interpreted, so TRITON_INTERPRET must be set both when triton is imported (its own
library of jit functions, hence here at conftest import, before other test modules
import diffusers, which imports triton) and when our launchers import their jit modules
(at a test's first launch, hence a fixture for every test here). And only here: the
farm's code launches kernels wherever the variable is set (reelfarm_kernels._dispatch),
and the interpreter would slow the model tests of the same session down for nothing."""

from __future__ import annotations

import importlib.util
import os

import pytest

HAVE_TRITON = importlib.util.find_spec("triton") is not None
if HAVE_TRITON:
    with pytest.MonkeyPatch.context() as _mp:
        _mp.setenv("TRITON_INTERPRET", "1")
        import triton  # noqa: F401 - decorates triton.language's jit functions as interpreted
# Tests that launch kernels; the fallback and import-name tests run without triton. CI
# installs triton (Makefile), so there a missing triton fails instead of skipping.
needs_triton = pytest.mark.skipif(not HAVE_TRITON and not os.environ.get("CI"),
                                  reason="triton not installed (pip install 'reelfarm[kernels]')")


@pytest.fixture(scope="package", autouse=True)
def triton_interpret():
    """Set for this package's tests, module fixtures included (package scope comes first)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_INTERPRET", "1")
        yield


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.kernels)
