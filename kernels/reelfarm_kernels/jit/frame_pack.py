"""_frame_pack_kernel: one program packs a tile of 2x2 pixel blocks of one frame.

    grid (f, ceil(Hc / BH), ceil(Wc / BW)); a program reads its (2 BH, 2 BW) pixels once
    (3 floats each), writes their RGB and Y bytes, and one U and one V byte per block
    (with YUV=False only the RGB bytes).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from reelfarm_kernels.frame_pack import UB, UG, UR, VB, VG, VR, YB, YG, YR

BH, BW = 8, 64  # chroma blocks per program: 16 x 128 pixels


@triton.jit
def _to_u8(x):
    """float in [-1, 1] -> int32 0..255 as round(clamp(x / 2 + 0.5, 0, 1) * 255), half to even."""
    v = x.to(tl.float32) * 0.5 + 0.5  # == x / 2 + 0.5 exactly: halving is exact
    v = tl.minimum(tl.maximum(v, 0.0), 1.0) * 255.0
    lo = tl.floor(v)
    d = v - lo  # exact
    up = (d > 0.5) | ((d == 0.5) & ((lo.to(tl.int32) & 1) == 1))
    return lo.to(tl.int32) + up.to(tl.int32)


@triton.jit
def _frame_pack_kernel(x_ptr, rgb_ptr, yuv_ptr, H, W, HC, WC,
                       s_f, s_c, s_h, s_w,
                       YR: tl.constexpr, YG: tl.constexpr, YB: tl.constexpr,
                       UR: tl.constexpr, UG: tl.constexpr, UB: tl.constexpr,
                       VR: tl.constexpr, VG: tl.constexpr, VB: tl.constexpr,
                       YUV: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    ci = tl.program_id(1) * BH + tl.arange(0, BH)[:, None]  # (BH, 1) chroma rows
    cj = tl.program_id(2) * BW + tl.arange(0, BW)[None, :]  # (1, BW) chroma columns
    block = (ci < HC) & (cj < WC)
    src = x_ptr + t * s_f
    plane = H * W + 2 * HC * WC
    y_out = yuv_ptr + t * plane
    rs = tl.zeros((BH, BW), dtype=tl.int32)
    gs = tl.zeros((BH, BW), dtype=tl.int32)
    bs = tl.zeros((BH, BW), dtype=tl.int32)
    for dy in tl.static_range(2):
        for dx in tl.static_range(2):
            py = 2 * ci + dy
            px = 2 * cj + dx
            inside = block & (py < H) & (px < W)
            # odd edges: read the last row / column again for the chroma sum
            off = tl.minimum(py, H - 1) * s_h + tl.minimum(px, W - 1) * s_w
            r = _to_u8(tl.load(src + off, mask=block, other=0.0))
            g = _to_u8(tl.load(src + s_c + off, mask=block, other=0.0))
            b = _to_u8(tl.load(src + 2 * s_c + off, mask=block, other=0.0))
            pix = (t * H + py) * W + px
            tl.store(rgb_ptr + pix * 3, r.to(tl.uint8), mask=inside)
            tl.store(rgb_ptr + pix * 3 + 1, g.to(tl.uint8), mask=inside)
            tl.store(rgb_ptr + pix * 3 + 2, b.to(tl.uint8), mask=inside)
            if YUV:
                y = ((YR * r + YG * g + YB * b + 32768) >> 16) + 16
                y = tl.minimum(tl.maximum(y, 16), 235)
                tl.store(y_out + py * W + px, y.to(tl.uint8), mask=inside)
                rs += r
                gs += g
                bs += b
    if YUV:
        u = ((UR * rs + UG * gs + UB * bs + 131072) >> 18) + 128
        v = ((VR * rs + VG * gs + VB * bs + 131072) >> 18) + 128
        u = tl.minimum(tl.maximum(u, 16), 240)
        v = tl.minimum(tl.maximum(v, 16), 240)
        c_off = H * W + ci * WC + cj
        tl.store(y_out + c_off, u.to(tl.uint8), mask=block)
        tl.store(y_out + c_off + HC * WC, v.to(tl.uint8), mask=block)


def launch(frames: torch.Tensor, rgb: torch.Tensor, yuv: torch.Tensor | None) -> None:
    """frames (f, 3, H, W) any strides -> rgb (f, H, W, 3), yuv (f, plane) contiguous
    (None: RGB only)."""
    f, _, h, w = frames.shape
    hc, wc = (h + 1) // 2, (w + 1) // 2
    grid = (f, triton.cdiv(hc, BH), triton.cdiv(wc, BW))
    _frame_pack_kernel[grid](frames, rgb, rgb if yuv is None else yuv, h, w, hc, wc,
                             *frames.stride(),
                             YR=YR, YG=YG, YB=YB, UR=UR, UG=UG, UB=UB, VR=VR, VG=VG, VB=VB,
                             YUV=yuv is not None, BH=BH, BW=BW, enable_fp_fusion=False)
