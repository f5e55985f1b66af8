"""Shared fixtures. Tiers: tests/unit (pure, no torch), tests/model (torch CPU, tiny
models), tests/serving (local Ray, gRPC on 127.0.0.1), tests/e2e (the CLI)."""

from __future__ import annotations

import os

# MKL's CPU results depend on memory alignment; weights loaded by from_pretrained sit at
# other alignments than freshly built ones. Bit-exact comparisons need reproducible
# kernels. Must be set before torch loads MKL (the Makefile sets it too).
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

from tests.pki import pki  # noqa: E402, F401 - a throwaway CA for the TLS tests


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """Tiny model folders by kind, written once per test session."""
    cache: dict[str, str] = {}

    def get(kind: str = "t2v-a14b") -> str:
        if kind not in cache:
            from farm.model.tiny import init_tiny

            cache[kind] = str(init_tiny(tmp_path_factory.mktemp(f"tiny-{kind}"), kind, seed=0))
        return cache[kind]

    return get


@pytest.fixture
def one_thread():
    """Tiny tensors: torch's threads only contend on a shared 2-core machine (a tiny S2V
    forward: 6 ms on one thread, 0.7 s on two). Modules ask for it with
    `pytest.mark.usefixtures("one_thread")`."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
