"""Window blend + solver step: kernel == reference, and both == blending and then calling
diffusers' scheduler.step (the farm's windows path before it fused them) over whole
trajectories.

Tolerances. Kernel vs reference and fused vs diffusers: bit for bit on CPU (same ops in
the same order, no FMA contraction); on a GPU |a - b| <= 1e-6 * max|b| (a few float32 ulps).
The blend alone is compared bit for bit (windows must agree exactly on shared frames).
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from farm.plan.segments import Window, blend_weights, neighbours, plan_windows
from reelfarm_kernels import blend_step as bs
from reelfarm_kernels.blend_step import BhUpdate, Source, StepCoefficients, blend_reference
from reelfarm_kernels.solver_step import scheduler_step, step_coefficients
from tests.kernels.conftest import needs_triton

REL = 1e-6


def close(got: torch.Tensor, want: torch.Tensor) -> None:
    if got.device.type == "cpu":  # measured equal, and the farm's windows step relies on it
        assert torch.equal(got, want)  # (farm.model.phase; tests/model/test_windows_fused.py)
        return
    torch.testing.assert_close(got, want, rtol=0, atol=REL * max(1.0, want.abs().max().item()))


def window_sources(windows, me: int, preds: dict[int, torch.Tensor]) -> list[Source]:
    """My prediction and my neighbours' on shared frames, weighted as _Halo does."""
    w = windows[me]
    out = []
    for k in sorted((me, *neighbours(windows, me))):
        o = windows[k]
        lo, hi = max(w.start, o.start), min(w.stop, o.stop)
        weights = torch.tensor(blend_weights(o), dtype=torch.float32)[lo - o.start:hi - o.start]
        out.append(Source(preds[k][:, :, lo - o.start:hi - o.start], lo - w.start, weights))
    return out


UNIPC = [  # (corrector, predictor): step 0, warm-up, steady state, last step
    (None, BhUpdate(1, 0.97, -0.11, -0.11)),
    (BhUpdate(1, 0.93, -0.2, -0.2, rho_new=0.5),
     BhUpdate(2, 0.9, -0.3, -0.3, rk=-1.3, rho_hist=0.5)),
    (BhUpdate(2, 0.9, -0.3, -0.3, rk=-1.1, rho_hist=0.41, rho_new=0.36),
     BhUpdate(2, 0.8, -0.4, -0.4, rk=-0.9, rho_hist=0.5)),
    (BhUpdate(2, 0.7, -0.5, -0.5, rk=-0.8, rho_hist=0.4, rho_new=0.4),
     BhUpdate(1, 0.0, -1.0, -1.0)),
]
COEFFS = [StepCoefficients("euler", dt=-0.083)] + [
    StepCoefficients("unipc", sigma=0.8, corrector=c, predictor=p) for c, p in UNIPC]
# (C, F, h, w, windows as (start, stop) of a scene, member): h * w = 1155 is not a
# multiple of the kernel's 1024 block; F odd; 1 to 4 overlapping windows
LAYOUTS = [(4, 5, 6, 7, [(0, 5)], 0), (3, 7, 33, 35, [(0, 7), (4, 11)], 1),
           (2, 5, 3, 5, [(0, 5), (3, 8), (6, 11)], 1),
           (2, 6, 4, 4, [(0, 6), (2, 8), (4, 10), (5, 11)], 2)]


def layout_inputs(layout, seed: int):
    c, f, h, w, spans, me = layout
    windows = tuple(Window(a, b) for a, b in spans)
    g = torch.Generator().manual_seed(seed)
    preds = {k: torch.randn((1, c, win.size, h, w), generator=g) for k, win in enumerate(windows)}
    sources = window_sources(windows, me, preds) if len(windows) > 1 else [Source(preds[0], 0)]
    x, m0, m1, last = (torch.randn((1, c, f, h, w), generator=g) for _ in range(4))
    return sources, x, m0, m1, last


@needs_triton
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: f"{len(lay[4])}win")
@pytest.mark.parametrize("coeffs", COEFFS, ids=["euler", "p1", "c1p2", "c2p2", "c2p1"])
def test_kernel_equals_reference(layout, coeffs):
    sources, x, m0, m1, last = layout_inputs(layout, seed=len(layout[4]))
    got = bs.blend_step(sources, x, coeffs, m0, m1, last, use_triton=True)
    want = bs.blend_step_reference(sources, x, coeffs, m0, m1, last)
    for g, w in zip(got.__dict__.values(), want.__dict__.values(), strict=True):
        assert (g is None) == (w is None)
        if w is not None:
            close(g, w)


@needs_triton
@pytest.mark.parametrize("layout", LAYOUTS[1:], ids=lambda lay: f"{len(lay[4])}win")
def test_farm_halo_sources_and_blend_bit_for_bit(layout):
    from farm.model.phase import _Halo

    c, f, h, w, spans, me = layout
    windows = tuple(Window(a, b) for a, b in spans)
    sources, *_ = layout_inputs(layout, seed=5)
    halo = _Halo(SimpleNamespace(member=me, gang=windows, window=windows[me]), torch.device("cpu"))
    mine = next(s.pred for s in sources if s.start == 0 and s.pred.shape[2] == f)
    got = {k: s.pred for k, s in zip(sorted((me, *halo.nbrs)), sources, strict=True) if k != me}
    farm = halo.sources(mine, got)  # what the farm's windows step blends
    for a, b in zip(farm, sources, strict=True):
        assert (a.start == b.start and torch.equal(a.pred, b.pred)
                and torch.equal(a.weights, b.weights))
    # the blend as the farm computed it before the fused step: sum w p / sum w, ascending
    num, den = torch.zeros_like(mine), torch.zeros(1, 1, f, 1, 1)
    for s in sources:
        wk = s.weights.view(1, 1, -1, 1, 1)
        num[:, :, s.start:s.start + s.pred.shape[2]] += wk * s.pred
        den[:, :, s.start:s.start + s.pred.shape[2]] += wk
    want = num / den
    assert torch.equal(blend_reference(sources, f), want)
    # the kernel's blend alone: an Euler step from x = 0 with dt = 1 returns v unchanged
    zero = torch.zeros_like(want)
    out = bs.blend_step(sources, zero, StepCoefficients("euler", dt=1.0), use_triton=True)
    assert torch.equal(out.prev_sample, want)


def make_scheduler(kind: str, steps: int, **config):
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    if kind == "euler":
        s = FlowMatchEulerDiscreteScheduler(shift=12.0)
    else:  # the farm's UniPC (farm.model.tiny.build_scheduler)
        s = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                    num_train_timesteps=1000, flow_shift=12.0, **config)
    s.set_timesteps(steps)
    s.set_begin_index(0)
    return s


TRAJECTORIES = [("euler", 6, {}), ("unipc", 10, {}), ("unipc", 5, {"solver_order": 1}),
                ("unipc", 7, {"disable_corrector": [2]}), ("unipc", 2, {})]


@pytest.mark.parametrize("use_triton", [pytest.param(True, marks=needs_triton), False],
                         ids=["kernel", "reference"])
@pytest.mark.parametrize("kind,steps,config", TRAJECTORIES, ids=lambda v: str(v))
def test_fused_step_equals_blend_then_diffusers_step(kind, steps, config, use_triton):
    layout = LAYOUTS[1] if use_triton else LAYOUTS[2]
    ref, fused = make_scheduler(kind, steps, **config), make_scheduler(kind, steps, **config)
    _, x, *_ = layout_inputs(layout, seed=11)
    xa, xb = x, x.clone()
    for i, t in enumerate(ref.timesteps):
        sources, *_ = layout_inputs(layout, seed=100 + i)  # fresh predictions every step
        xa = ref.step(blend_reference(sources, x.shape[2]), t, xa, return_dict=False)[0]
        xb = scheduler_step(fused, sources, t, xb, use_triton=use_triton)
        close(xb, xa)
    assert fused.step_index == ref.step_index == steps
    if kind == "unipc":  # the state a handoff carries matches too
        for a, b in zip(ref.model_outputs, fused.model_outputs, strict=True):
            close(b, a)
        close(fused.last_sample, ref.last_sample)
        assert (fused.this_order, fused.lower_order_nums) == (ref.this_order, ref.lower_order_nums)
        assert [float(t) for t in fused.timestep_list] == [float(t) for t in ref.timestep_list]


def test_coefficients_cover_every_branch_of_a_run():
    s = make_scheduler("unipc", 5)
    seen = []
    s._init_step_index(s.timesteps[0])
    for t in s.timesteps:
        c = step_coefficients(s)
        seen.append((c.corrector.order if c.corrector else 0, c.predictor.order))
        s.step(torch.ones(1, 1, 1, 1, 1), t, torch.ones(1, 1, 1, 1, 1))
    assert seen == [(0, 1), (1, 2), (2, 2), (2, 2), (2, 1)]


def test_unsupported_schedulers_are_rejected():
    s = make_scheduler("unipc", 4, solver_type="bh1")
    with pytest.raises(ValueError, match="bh2"):
        step_coefficients(s)


def test_without_interpreter_the_launcher_returns_the_reference(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    monkeypatch.setitem(sys.modules, "reelfarm_kernels.jit.blend_step", None)  # import fails
    sources, x, m0, m1, last = layout_inputs(LAYOUTS[1], seed=3)
    coeffs = COEFFS[3]
    got = bs.blend_step(sources, x, coeffs, m0, m1, last)
    want = bs.blend_step_reference(sources, x, coeffs, m0, m1, last)
    assert torch.equal(got.prev_sample, want.prev_sample)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        bs.blend_step(sources, x, coeffs, m0, m1, last, use_triton=True)


def test_without_triton_the_launcher_returns_the_reference(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` raises ImportError
    monkeypatch.setitem(sys.modules, "reelfarm_kernels.jit.blend_step", None)
    sources, x, *_ = layout_inputs(LAYOUTS[0], seed=4)
    got = bs.blend_step(sources, x, COEFFS[0])
    assert torch.equal(got.prev_sample, bs.blend_step_reference(sources, x, COEFFS[0]).prev_sample)
    with pytest.raises(RuntimeError, match="not installed"):
        bs.blend_step(sources, x, COEFFS[0], use_triton=True)


def test_more_windows_than_kernel_slots_fall_back(monkeypatch):
    monkeypatch.setitem(sys.modules, "reelfarm_kernels.jit.blend_step", None)
    windows = plan_windows(30, 8, 6)
    me = 3
    assert len(neighbours(windows, me)) + 1 > bs.MAX_SOURCES
    preds = {k: torch.randn(1, 2, w.size, 3, 3) for k, w in enumerate(windows)}
    sources = window_sources(windows, me, preds)
    x = torch.randn(1, 2, windows[me].size, 3, 3)
    got = bs.blend_step(sources, x, COEFFS[0])
    assert torch.equal(got.prev_sample, bs.blend_step_reference(sources, x, COEFFS[0]).prev_sample)


def test_launcher_checks_shapes_and_dtypes():
    sources, x, m0, m1, last = layout_inputs(LAYOUTS[1], seed=6)
    with pytest.raises(ValueError, match="sample must be one of"):
        bs.blend_step(sources, x.double(), COEFFS[0])
    with pytest.raises(ValueError, match="outside"):
        bs.blend_step([Source(sources[1].pred, 6, sources[1].weights)], x, COEFFS[0])
    with pytest.raises(ValueError, match="reads m1"):
        bs.blend_step(sources, x, COEFFS[3], m0, None, last)
    with pytest.raises(ValueError, match="m0 must have shape"):
        bs.blend_step(sources, x, COEFFS[2], m0[:, :, :2], m1, last)
    with pytest.raises(ValueError, match="without weights"):
        bs.blend_step([Source(sources[0].pred, 0)] + sources[1:], x, COEFFS[0])
