"""Frame packing: decoded VAE output -> uint8 RGB and uint8 YUV 4:2:0 in one pass.

The decoder yields float frames, channels first, in [-1, 1]. The encoder wants 8-bit
YUV 4:2:0 and the PNG writer 8-bit RGB. Packing both on the GPU in one read means the
device-to-host copy moves 1.5 bytes per pixel (YUV) or 3 (RGB) instead of 12 (fp32 RGB).

    video (1, 3, f, H, W) or (f, 3, H, W), float in [-1, 1]
      rgb  (f, H, W, 3) uint8    = round((clamp(x / 2 + 0.5, 0, 1)) * 255), half to even:
                                   diffusers' postprocess in 8 bit; the farm's frames
                                   (farm.model.decode.to_uint8 packs with yuv=False)
      yuv  (f, H*W + 2*Hc*Wc) uint8, per frame the planes  Y (H, W) | U (Hc, Wc) | V (Hc, Wc)
                                   with Hc, Wc = ceil(H / 2), ceil(W / 2); yuv=False skips it

YUV is BT.709, limited range (Y 16..235, U/V 16..240), computed from the 8-bit RGB in
integer fixed point, so kernel and reference agree bit for bit on any hardware:

    Y = 16  + (YR*R + YG*G + YB*B + 2^15) >> 16                  per pixel
    U = 128 + (UR*Rs + UG*Gs + UB*Bs + 2^17) >> 18               per 2x2 block, Rs = sum of
    V = 128 + (VR*Rs + VG*Gs + VB*Bs + 2^17) >> 18               its 4 R values (likewise G, B)

Rounding is half up (toward +infinity: the shift is arithmetic). Chroma averages each 2x2
block before its single rounding; at an odd right or bottom edge the last column / row
is repeated to fill the block. Coefficients are round(2^16 * BT.709 factor), with YG, UG
and VG set so that white maps to Y 235 and every grey to U = V = 128 exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reelfarm_kernels._dispatch import check_dtype, use_kernel

KR, KB = 0.2126, 0.0722  # BT.709 luma weights of R and B
YR, YG, YB = 11966, 40254, 4064  # 219/255 * (KR, KG, KB) * 2^16
UR, UG, UB = -6596, -22188, 28784  # 224/255 * (-KR, -KG, 1 - KB) / (2 (1 - KB)) * 2^16
VR, VG, VB = 28784, -26145, -2639  # 224/255 * (1 - KR, -KG, -KB) / (2 (1 - KR)) * 2^16
FLOATS = (torch.float32, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class PackedFrames:
    """One decoded chunk, packed for the frame writers."""

    rgb: torch.Tensor  # (f, H, W, 3) uint8
    yuv: torch.Tensor | None  # (f, H*W + 2*Hc*Wc) uint8, planes Y | U | V per frame;
                              # None: not asked
    height: int
    width: int

    def planes(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Views Y (f, H, W), U (f, Hc, Wc), V (f, Hc, Wc) of `yuv`."""
        if self.yuv is None:
            raise ValueError("these frames were packed without YUV (frame_pack(..., yuv=False))")
        f, (h, w), (hc, wc) = (self.yuv.shape[0], (self.height, self.width),
                               chroma_size(self.height, self.width))
        y, u, v = self.yuv.split([h * w, hc * wc, hc * wc], dim=1)
        return y.view(f, h, w), u.view(f, hc, wc), v.view(f, hc, wc)


def chroma_size(height: int, width: int) -> tuple[int, int]:
    return (height + 1) // 2, (width + 1) // 2


def frame_pack(video: torch.Tensor, *, yuv: bool = True,
               use_triton: bool | None = None) -> PackedFrames:
    """Pack decoded frames; runs the Triton kernel where it can, else the reference."""
    frames = _frames_first(video)  # (f, 3, H, W), a view
    if not use_kernel(use_triton, frames):
        return frame_pack_reference(video, yuv=yuv)
    from reelfarm_kernels.jit.frame_pack import launch

    f, _, h, w = frames.shape
    hc, wc = chroma_size(h, w)
    rgb = torch.empty((f, h, w, 3), dtype=torch.uint8, device=frames.device)
    planes = (torch.empty((f, h * w + 2 * hc * wc), dtype=torch.uint8, device=frames.device)
              if yuv else None)
    launch(frames, rgb, planes)
    return PackedFrames(rgb, planes, h, w)


def frame_pack_reference(video: torch.Tensor, *, yuv: bool = True) -> PackedFrames:
    """The same packing in plain torch ops (the definition the kernel is tested against)."""
    frames = _frames_first(video)
    f, _, h, w = frames.shape
    # RGB: diffusers' VideoProcessor.postprocess_video (x / 2 + 0.5, clamp) then * 255,
    # rounded half to even: the frames WanPipeline returns, as 8-bit
    rgb = ((frames.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)  # (f, 3, H, W)
    if not yuv:
        return PackedFrames(rgb.permute(0, 2, 3, 1).contiguous(), None, h, w)
    r, g, b = rgb.to(torch.int32).unbind(1)  # each (f, H, W)
    y = ((YR * r + YG * g + YB * b + (1 << 15)) >> 16) + 16
    # chroma: repeat the last row / column at odd edges, then sum each 2x2 block
    rs, gs, bs = (_block_sums(_pad_even(c)) for c in (r, g, b))  # each (f, Hc, Wc)
    u = ((UR * rs + UG * gs + UB * bs + (1 << 17)) >> 18) + 128
    v = ((VR * rs + VG * gs + VB * bs + (1 << 17)) >> 18) + 128
    planes = [y.clamp(16, 235), u.clamp(16, 240), v.clamp(16, 240)]
    yuv = torch.cat([p.flatten(1) for p in planes], dim=1).to(torch.uint8)
    return PackedFrames(rgb.permute(0, 2, 3, 1).contiguous(), yuv, h, w)


def _frames_first(video: torch.Tensor) -> torch.Tensor:
    """(1, 3, f, H, W) or (f, 3, H, W) -> (f, 3, H, W), a view (no copy)."""
    check_dtype("video", video, FLOATS)
    if video.dim() == 5 and video.shape[0] == 1 and video.shape[1] == 3:
        return video[0].transpose(0, 1)
    if video.dim() == 4 and video.shape[1] == 3:
        return video
    raise ValueError(f"video must be (1, 3, f, H, W) or (f, 3, H, W), got {tuple(video.shape)}")


def _pad_even(c: torch.Tensor) -> torch.Tensor:
    if c.shape[1] % 2:
        c = torch.cat([c, c[:, -1:]], dim=1)
    if c.shape[2] % 2:
        c = torch.cat([c, c[:, :, -1:]], dim=2)
    return c


def _block_sums(c: torch.Tensor) -> torch.Tensor:
    return c[:, 0::2, 0::2] + c[:, 1::2, 0::2] + c[:, 0::2, 1::2] + c[:, 1::2, 1::2]
