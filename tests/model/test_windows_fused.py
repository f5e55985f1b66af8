"""Windows mode steps with the fused blend + solver step (reelfarm_kernels.blend_step, its
torch reference on CPU): bit for bit what blending and then calling diffusers' step gives,
latents and the solver state a handoff carries, for UniPC and Euler; predictions in
another dtype than float32 keep blend-then-step (the fused pass is float32 only)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import farm.model.phase as phase
from farm.engine.executor import run_gang
from farm.engine.orders import DenoiseOrder, ModelRef
from farm.model.loader import ModelLoader, resolve_model
from farm.model.text import encode_prompts
from farm.model.worker import TorchWorker
from farm.plan.segments import Window, plan_windows
from farm.plan.timesteps import phases, timesteps

pytestmark = pytest.mark.model
W, H, STEPS, SEED = 32, 32, 6, 11
GUIDANCE = {"high": 4.0, "low": 3.0}


@pytest.fixture(scope="module")
def embeds():
    tok, enc = ModelLoader(resolve_model("tiny")).text()
    return encode_prompts(tok, enc, "waves on a beach", "blurry", 512, with_negative=True)


def sharded(solver: str, num_latent: int, window: int, overlap: int, embeds, stop: int = STEPS):
    """Every window on its own worker and solver, halos swapped each step (run_gang)."""
    ref = ModelRef("tiny", "t2v-a14b", ("high", "low"), W, H, STEPS, 12.0, solver, 512)
    windows = plan_windows(num_latent, window, overlap)
    workers = [(TorchWorker(resolve_model("tiny")), f"w{k}") for k in range(len(windows))]
    states = [None] * len(windows)
    for ph in phases(timesteps(solver, STEPS, 12.0), (0.875,)):
        if ph.start >= stop:
            break
        expert = ref.experts[ph.expert]
        orders = tuple(DenoiseOrder("f", "t", f"s/{k}", "s", ref, SEED, expert, GUIDANCE[expert],
                                    ph.start, min(ph.stop, stop), w, windows, k, False)
                       for k, w in enumerate(windows))
        states = run_gang(workers, orders, embeds, states, None)
    return states


def handoff_tensors(h) -> list[torch.Tensor]:
    return [t for t in (h.latents, *h.state.model_outputs, h.state.last_sample) if t is not None]


@pytest.mark.parametrize("solver", ["unipc", "euler"])
@pytest.mark.parametrize("num_latent,window,overlap,stop", [(10, 5, 2, STEPS), (9, 4, 3, STEPS),
                                                            (10, 5, 2, 2)])
def test_fused_step_equals_blend_then_diffusers_step(solver, num_latent, window, overlap, stop,
                                                     embeds, monkeypatch):
    calls = []
    fused_step = phase.scheduler_step
    monkeypatch.setattr(phase, "scheduler_step",
                        lambda *a, **k: calls.append(1) or fused_step(*a, **k))
    fused = sharded(solver, num_latent, window, overlap, embeds, stop)
    windows = len(plan_windows(num_latent, window, overlap))
    assert len(calls) == windows * stop  # every window, every step
    monkeypatch.setattr(phase, "supports", lambda scheduler: False)  # blend, then step()
    plain = sharded(solver, num_latent, window, overlap, embeds, stop)
    assert len(calls) == windows * stop
    for a, b in zip(fused, plain, strict=True):
        # the latents, and (mid-run: stop < STEPS) the UniPC history a handoff carries
        assert a.state == b.state if solver == "euler" else a.state.step_index == b.state.step_index
        for x, y in zip(handoff_tensors(a), handoff_tensors(b), strict=True):
            assert torch.equal(x, y)


def test_other_prediction_dtypes_blend_then_step_in_their_dtype(monkeypatch):
    """bf16: the blend rounded to bf16, then diffusers' step (it multiplies in bf16)."""
    windows = (Window(0, 4), Window(2, 6))
    order = SimpleNamespace(member=0, gang=windows, window=windows[0])
    halo = phase._Halo(order, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    pred = torch.randn((1, 2, 4, 3, 3), generator=g).to(torch.bfloat16)
    theirs = torch.randn((1, 2, 2, 3, 3), generator=g).to(torch.bfloat16)
    monkeypatch.setattr(phase, "scheduler_step", None)  # must not be called
    stepped = []
    run = SimpleNamespace(halo=halo, fusable=True, latents=torch.zeros(1, 2, 4, 3, 3),
                          advance=lambda i, p: stepped.append(p))
    phase._Run.blend_advance(run, 0, pred, {1: theirs})
    # the blend as the farm has always computed it: sum w p / sum w in float32, ascending
    w0, w1 = halo.weights[0].view(1, 1, -1, 1, 1), halo.weights[1][:2].view(1, 1, -1, 1, 1)
    num, den = w0 * pred.float(), w0.expand(1, 1, 4, 1, 1).clone()
    num[:, :, 2:] += w1 * theirs.float()
    den[:, :, 2:] += w1
    assert stepped[0].dtype == torch.bfloat16 and torch.equal(stepped[0], (num / den).bfloat16())


def test_a_gang_with_a_window_beyond_the_kernels_sources_uses_the_reference_everywhere():
    """Windows step shared frames identically only if they all take the same path."""
    def path(spans, me):
        windows = tuple(Window(a, b) for a, b in spans)
        order = SimpleNamespace(member=me, gang=windows, window=windows[me])
        return phase._Halo(order, torch.device("cpu")).use_triton
    assert path([(0, 5), (3, 8), (6, 11)], 0) is None  # at most 3 windows on a frame range
    dense = [(0, 5), (1, 6), (2, 7), (3, 8), (4, 9)]  # window 2 shares frames with all 4 others
    assert [path(dense, k) for k in range(5)] == [False] * 5
