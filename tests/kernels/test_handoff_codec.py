"""Handoff codec: kernel == reference bit for bit (both == torch's own conversions), the
rounding error stays within the format's bound, and the opt-in wire format round-trips.

Error bounds (reference vs exact), unit roundoff: bf16 |x' - x| <= 2^-8 |x| (7 stored bits);
fp8 e4m3 |x' - x| <= 2^-4 |x| + 2^-10 scale_c (3 stored bits, or half
the subnormal step 2^-9 scale_c) + 2^-20 |x| for the float32 scaling.
"""

from __future__ import annotations

import sys

import pytest
import torch

from farm.model.solver import Handoff, SolverState
from reelfarm_kernels import handoff_codec as hc
from tests.kernels.conftest import needs_triton

# handoff-like (1, C, F, h, w), odd sizes, rows longer than the kernel's 1024 block, batch 2
SHAPES = [(1, 16, 5, 6, 7), (1, 3, 3, 17, 33), (2, 4, 9), (1, 2, 1, 1, 1)]


def tensor(shape, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # channels of very different magnitudes, as latents and x0 predictions have; one all zero
    mags = torch.logspace(-6, 2, shape[1])
    x = torch.randn(shape, generator=g) * mags.view(1, -1, *([1] * (len(shape) - 2)))
    if shape[1] > 2:
        x[:, 1] = 0
    return x


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.uint8)


@needs_triton
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("codec", hc.CODECS)
def test_kernel_equals_reference_bit_for_bit(shape, codec):
    x = tensor(shape, seed=len(shape))
    got, want = hc.pack(x, codec, use_triton=True), hc.pack_reference(x, codec)
    assert got.data.dtype == want.data.dtype and torch.equal(bits(got.data), bits(want.data))
    if codec == "fp8":
        assert torch.equal(got.scale, want.scale)
    assert torch.equal(hc.unpack(got, use_triton=True), hc.unpack_reference(want))


@needs_triton
def test_special_values_round_like_torch():
    v = [0.0, -0.0, 1e-45, -1e-40, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 3.3895e38, float("inf"),
         -float("inf")]
    x = torch.tensor(v).view(1, 1, -1)
    assert torch.equal(bits(hc.pack(x, "bf16", use_triton=True).data), bits(x.to(torch.bfloat16)))
    # e4m3 ties and subnormals: values around 2^-9 steps, exact halves and the clamp at 448
    y = torch.tensor([448.0, 449.0, -470.0, 0.0, 2**-10, 3 * 2**-10, 2**-6 - 2**-11, 1.0625,
                      1.1875])
    y = y.view(1, 1, -1)
    got = hc.pack(y, "fp8", use_triton=True)
    assert got.scale.item() == (torch.tensor(470.0) / 448).item() and torch.equal(
        bits(got.data), bits(hc.pack_reference(y, "fp8").data))
    q = torch.arange(256, dtype=torch.uint8).view(1, 1, -1).view(torch.float8_e4m3fn)  # every code
    decoded = hc.unpack(hc.Packed("fp8", q, torch.ones(1)), use_triton=True)
    torch.testing.assert_close(decoded, q.float(), rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_reference_error_within_format_bounds(shape):
    x = tensor(shape, seed=9)
    b = hc.unpack_reference(hc.pack_reference(x, "bf16"))
    assert ((b - x).abs() <= 2**-8 * x.abs()).all()
    p = hc.pack_reference(x, "fp8")
    scale = p.scale.view(1, -1, *([1] * (len(shape) - 2)))
    err = (hc.unpack_reference(p) - x).abs()
    assert (err <= (2**-4 + 2**-20) * x.abs() + 2**-10 * scale).all()
    assert err.max() > 0  # lossy indeed: the bound is not met trivially


def handoff(seed=0) -> Handoff:
    t = tensor((1, 16, 3, 6, 10), seed)
    return Handoff(t, SolverState("unipc", 5, 0, [t * 0.5, t * 0.25], [875.0, 812.5], t * 0.75,
                                  2, 2))


@pytest.mark.parametrize("codec,ratio", [("bf16", 0.5), ("fp8", 0.25)])
def test_opt_in_wire_codec_round_trips(codec, ratio):
    h = handoff()
    exact, packed = h.to_bytes(), h.to_bytes(codec=codec)
    assert len(packed) < ratio * len(exact) + 2048  # + header and fp8 scales
    back = Handoff.from_bytes(packed)
    for got, want in [(back.latents, h.latents), (back.state.last_sample, h.state.last_sample),
                      *zip(back.state.model_outputs, h.state.model_outputs, strict=True)]:
        assert got.dtype == torch.float32 and got.shape == want.shape
        # fp8: a scale per channel and latent frame (the codec's channels: C * F)
        grouped = hc.unpack_reference(hc.pack_reference(want.flatten(1, 2), codec))
        assert torch.equal(got, grouped.view(want.shape))
    assert back.state.timestep_list == h.state.timestep_list and back.state.this_order == 2


def test_default_handoff_stays_exact():
    h = handoff(1)
    back = Handoff.from_bytes(h.to_bytes())
    assert (torch.equal(back.latents, h.latents)
            and torch.equal(back.state.last_sample, h.state.last_sample))


def test_without_interpreter_the_launcher_returns_the_reference(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    monkeypatch.setitem(sys.modules, "reelfarm_kernels.jit.handoff_codec", None)
    x = tensor((1, 4, 2, 3, 3))
    got, want = hc.pack(x, "fp8"), hc.pack_reference(x, "fp8")
    assert torch.equal(bits(got.data), bits(want.data))
    assert torch.equal(hc.unpack(got), hc.unpack_reference(want))


def test_launcher_checks_codec_and_dtype():
    with pytest.raises(ValueError, match="codec must be"):
        hc.pack(torch.zeros(1, 2, 3), "fp4")
    with pytest.raises(ValueError, match="must be one of"):
        hc.pack(torch.zeros(1, 2, 3, dtype=torch.float16), "bf16")
    with pytest.raises(ValueError, match="codec must be"):
        Handoff(torch.zeros(1, 2, 1, 1, 1), SolverState("euler", 0, 0)).to_bytes(codec="int4")
