"""Gangs inside a segment (farm.model.gang, farm.model.ulysses): every rank a process of
its own, over Gloo on loopback, equals the single-process run of the same segment: whole
phases of several steps, the solver state handed from the high- to the low-noise expert."""

from __future__ import annotations

import pytest
import torch

from tests.model.gang_helpers import embeds, orders, run_segment, spawn_gang

pytestmark = pytest.mark.model


@pytest.mark.parametrize("family,cfg,sp", [
    ("t2v-a14b", 2, 1),   # CFG parallel: cond and uncond forwards on two processes
    ("t2v-a14b", 1, 2),   # Ulysses: 45 tokens split 23 + 22, heads 2 -> 1 per rank
    ("ti2v-5b", 1, 2),    # per-token timesteps are split with the tokens
    ("t2v-a14b", 2, 2),   # both: 4 processes
])
def test_gang_equals_single_process(family, cfg, sp, tmp_path):
    prompt = embeds(family)
    ranks = spawn_gang(family, cfg, sp, prompt, tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the ranks: CPU reductions split by thread count
    try:
        alone = run_segment(family, prompt=prompt)
    finally:
        torch.set_num_threads(threads)
    for r, latents in enumerate(ranks):
        # every rank ends with the same latents (identical guided predictions and solvers)
        assert torch.equal(latents, ranks[0]), f"rank {r} differs from rank 0"
    diff = (ranks[0] - alone).abs().max().item()
    print(f"{family} cfg={cfg} sp={sp}: max abs diff {diff:.3g}")
    assert diff <= 1e-5
    if sp == 1:  # CFG only: the same two forwards, on two processes: exactly equal
        assert diff == 0.0


def test_a_degree_that_does_not_divide_the_heads_is_rejected():
    from farm.model.loader import resolve_model
    from farm.model.worker import TorchWorker

    order = orders("t2v-a14b", (1, 3, 0, "127.0.0.1:1"))[0]  # the tiny model has 2 heads
    with pytest.raises(ValueError,
                       match="Ulysses degree 3 must divide the 2 attention heads.*1, 2"):
        TorchWorker(resolve_model("tiny")).denoise_steps(order, None, None, None)


def test_cfg_parallel_needs_guidance():
    from dataclasses import replace

    from farm.model.loader import resolve_model
    from farm.model.worker import TorchWorker

    order = replace(orders("t2v-a14b", (2, 1, 0, "127.0.0.1:1"))[0], guidance=1.0)
    with pytest.raises(ValueError, match="CFG parallel needs guidance > 1"):
        TorchWorker(resolve_model("tiny")).denoise_steps(order, None, None, None)
