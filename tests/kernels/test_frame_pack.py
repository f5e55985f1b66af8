"""Frame packing: kernel == reference bit for bit (with and without YUV); RGB == diffusers'
postprocess in 8 bit, which the farm's to_uint8 returns; the YUV is BT.709 limited range
(checked against the float formula, not against itself)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farm.model.decode import to_uint8
from reelfarm_kernels import frame_pack as fp
from reelfarm_kernels.frame_pack import PackedFrames, frame_pack, frame_pack_reference
from tests.kernels.conftest import needs_triton

# (1, 3, f, H, W) decoder chunks and (f, 3, H, W) frame batches; odd f, H, W and sizes
# that are not multiples of the kernel's 16 x 128 pixel tile.
SHAPES = [(1, 3, 1, 16, 16), (1, 3, 5, 18, 34), (1, 3, 3, 17, 131), (4, 3, 7, 9), (1, 3, 2, 1, 1)]


def video(shape, dtype=torch.float32, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # beyond [-1, 1] on purpose: clamping is part of the op
    return (torch.randn(shape, generator=g) * 0.8).clamp(-1.3, 1.3).to(dtype)


@needs_triton
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_equals_reference_bit_for_bit(shape, dtype):
    x = video(shape, dtype, seed=sum(shape))
    got, want = frame_pack(x, use_triton=True), frame_pack_reference(x)
    torch.testing.assert_close(got.rgb, want.rgb, atol=0, rtol=0)
    torch.testing.assert_close(got.yuv, want.yuv, atol=0, rtol=0)


@needs_triton
def test_kernel_reads_strided_input_and_rounds_ties_to_even():
    # exact ties of v * 255 (k + 0.5 for v = (k + 0.5) / 255 when it rounds to a tie)
    ties = (torch.arange(256, dtype=torch.float32) + 0.5) / 255 * 2 - 1
    x = ties.repeat(18).view(1, 3, 2, 16, 48)[..., ::3]  # (1, 3, 2, 16, 16), strided
    assert not x.is_contiguous()
    assert ((x / 2 + 0.5) * 255 % 1 == 0.5).sum() > 100  # many exact ties among them
    got, want = frame_pack(x, use_triton=True), frame_pack_reference(x)
    assert torch.equal(got.rgb, want.rgb) and torch.equal(got.yuv, want.yuv)


@needs_triton
@pytest.mark.parametrize("shape", SHAPES[1:3])
def test_rgb_only_packing_skips_yuv_and_keeps_rgb(shape):
    x = video(shape, seed=7)
    full = frame_pack_reference(x)
    for packed in (frame_pack(x, yuv=False, use_triton=True), frame_pack_reference(x, yuv=False)):
        assert packed.yuv is None and torch.equal(packed.rgb, full.rgb)
    with pytest.raises(ValueError, match="without YUV"):
        packed.planes()


@pytest.mark.parametrize("shape", [s for s in SHAPES if len(s) == 5])
def test_rgb_is_diffusers_postprocess_in_8_bit_as_farm_to_uint8(shape):
    from diffusers.video_processor import VideoProcessor

    x = video(shape)
    want = np.round(VideoProcessor().postprocess_video(x, output_type="np")[0] * 255).astype(
        np.uint8)
    assert np.array_equal(frame_pack_reference(x).rgb.numpy(), want)
    assert np.array_equal(to_uint8(x), want)  # the farm's frames (here: the interpreted kernel)


def test_reference_yuv_is_bt709_limited_range():
    x = video((1, 3, 3, 10, 14), seed=3)
    packed = frame_pack_reference(x)
    rgb = packed.rgb.double()  # (f, H, W, 3)
    kr, kb = fp.KR, fp.KB
    luma = rgb @ torch.tensor([kr, 1 - kr - kb, kb], dtype=torch.float64)  # (f, H, W)
    y, u, v = packed.planes()
    assert (y.double() - (16 + 219 / 255 * luma)).abs().max() <= 0.5 + 1e-3
    block = rgb.view(3, 5, 2, 7, 2, 3).mean(dim=(2, 4))  # (f, Hc, Wc, 3) 2x2 averages
    bl = block @ torch.tensor([kr, 1 - kr - kb, kb], dtype=torch.float64)
    cb = 128 + 224 / 255 * (block[..., 2] - bl) / (2 * (1 - kb))
    cr = 128 + 224 / 255 * (block[..., 0] - bl) / (2 * (1 - kr))
    assert (u.double() - cb).abs().max() <= 0.5 + 1e-3
    assert (v.double() - cr).abs().max() <= 0.5 + 1e-3


def test_coefficients_follow_bt709():
    s = 1 << 16
    kr, kb = fp.KR, fp.KB
    assert (fp.YR, fp.YB) == (round(219 / 255 * kr * s), round(219 / 255 * kb * s))
    assert fp.YR + fp.YG + fp.YB == round(219 / 255 * s)
    assert (fp.UB, fp.UR) == (round(112 / 255 * s), round(-112 / 255 * kr / (1 - kb) * s))
    assert (fp.VR, fp.VB) == (round(112 / 255 * s), round(-112 / 255 * kb / (1 - kr) * s))
    assert fp.UR + fp.UG + fp.UB == 0 and fp.VR + fp.VG + fp.VB == 0


@pytest.mark.parametrize("level,want", [(-1.0, (16, 128, 128)), (1.0, (235, 128, 128)),
                                        (0.0, (126, 128, 128))])
def test_greys_map_to_neutral_chroma(level, want):
    packed = frame_pack_reference(torch.full((1, 3, 1, 4, 6), level))
    y, u, v = packed.planes()
    assert [y.unique().tolist(), u.unique().tolist(), v.unique().tolist()] == [[w] for w in want]


def test_odd_edges_repeat_the_last_row_and_column():
    x = video((1, 3, 1, 3, 5), seed=7)
    odd, even = frame_pack_reference(x), frame_pack_reference(_repeat_edges(x))
    assert (torch.equal(odd.planes()[1], even.planes()[1])
            and torch.equal(odd.planes()[2], even.planes()[2]))


def _repeat_edges(x: torch.Tensor) -> torch.Tensor:
    x = torch.cat([x, x[..., -1:, :]], dim=-2)
    return torch.cat([x, x[..., -1:]], dim=-1)


def test_launcher_rejects_bad_input():
    with pytest.raises(ValueError, match="video must be"):
        frame_pack(torch.zeros(1, 4, 2, 8, 8))
    with pytest.raises(ValueError, match="must be one of"):
        frame_pack(torch.zeros(1, 3, 2, 8, 8, dtype=torch.float64))


def test_bytes_per_pixel():
    packed: PackedFrames = frame_pack_reference(video((1, 3, 2, 16, 32)))
    pixels = 2 * 16 * 32
    assert packed.rgb.numel() == 3 * pixels and packed.yuv.numel() * 2 == 3 * pixels  # 1.5 B/px
