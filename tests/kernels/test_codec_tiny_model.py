"""The opt-in handoff codec on a real two-expert render (tiny t2v-a14b model): the wire
shrinks, the handoff error stays within the format's bound, and the low-noise phase does
not amplify it (final latents and decoded frames stay close to the exact handoff's)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(tiny_dirs):
    # bench/triton_kernels.py holds the render
    spec = importlib.util.spec_from_file_location("bench_kernels",
                                                  ROOT / "bench" / "triton_kernels.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench, bench.render_through_codecs(tiny_dirs("t2v-a14b"))


# (codec, wire ratio bound, unit roundoff, min PSNR of the frames in dB; measured 64 / 58).
# fp8: 1/4 of the bytes + 4 per scale, one per channel and latent frame: 80 a tensor on this
# tiny handoff (measured 0.285 in all), 0.06 % of the bytes of a 480p one.
CASES = [("bf16", 0.52, 2**-8, 50.0), ("fp8", 0.29, 2**-4, 45.0)]


@pytest.mark.parametrize("codec,ratio,roundoff,min_psnr", CASES)
def test_codec_on_a_two_phase_render(runs, codec, ratio, roundoff, min_psnr):
    bench, out = runs
    size, exact, latents, frames = out["exact"]
    n, resumed, latents_c, frames_c = out[codec]
    assert n <= ratio * size
    handoff_err = 0.0
    for got, want in zip(bench.handoff_tensors(resumed), bench.handoff_tensors(exact), strict=True):
        # per channel: roundoff of the value, plus (fp8) half a subnormal step of the scale
        amax = want.abs().amax(dim=(0, 2, 3, 4), keepdim=True)
        floor = amax / 448 * 2**-10 if codec == "fp8" else 0.0
        assert ((got - want).abs() <= (roundoff + 2**-20) * want.abs() + floor).all()
        handoff_err = max(handoff_err, (got - want).abs().max().item())
    final_err = (latents_c - latents).abs().max().item()
    assert 0 < final_err <= 2 * handoff_err
    d = torch.from_numpy(frames_c).double() - torch.from_numpy(frames).double()
    psnr = 10 * math.log10(255**2 / max((d**2).mean().item(), 1e-12))
    assert psnr >= min_psnr



def test_the_bench_names_a_window_too_short_for_its_blend_case():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "bench" / "triton_kernels.py"),
                           "--latents", "3"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--latents 3: at least 4" in done.stderr
