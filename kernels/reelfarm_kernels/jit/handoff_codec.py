"""Handoff codec kernels: bf16 and e4m3fn rounding in integer bit operations.

    bf16:  r = (u + 0x7FFF + lsb(u >> 16)) >> 16            u = fp32 bits, NaN -> 0x7FC0
    e4m3fn (|y| <= 448, as c10's fp8e4m3fn_from_fp32_value):
      |y| >= 2^-6  r = (a - (120 << 23) + 0x7FFFF + lsb(a >> 20)) >> 20      a = |y| bits
      |y| <  2^-6  r = bits(|y| + 2^14) - bits(2^14)    (float add: rounds to 2^-9 steps)
    fp8 runs as (B * C) rows of M values: grid (B * C, ceil(M / BLOCK)).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _bf16_encode_kernel(x_ptr, q_ptr, N, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    u = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.uint32, bitcast=True)
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    r = tl.where((u & 0x7FFFFFFF) > 0x7F800000, 0x7FC0, r)
    tl.store(q_ptr + offs, r.to(tl.uint16), mask=mask)


@triton.jit
def _bf16_decode_kernel(q_ptr, x_ptr, N, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    u = tl.load(q_ptr + offs, mask=mask, other=0).to(tl.uint32) << 16
    tl.store(x_ptr + offs, u.to(tl.float32, bitcast=True), mask=mask)


@triton.jit
def _amax_kernel(x_ptr, part_ptr, M, NB, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    j = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * M + j, mask=j < M, other=0.0)
    tl.store(part_ptr + row * NB + tl.program_id(1), tl.max(tl.abs(x), axis=0))


@triton.jit
def _fp8_encode_kernel(x_ptr, inv_ptr, q_ptr, M, C, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    j = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = j < M
    x = tl.load(x_ptr + row * M + j, mask=mask, other=0.0)
    y = x * tl.load(inv_ptr + row % C)
    y = tl.minimum(tl.maximum(y, -448.0), 448.0)
    u = y.to(tl.uint32, bitcast=True)
    sign = u & 0x80000000
    a = u ^ sign
    normal = (a - (120 << 23) + 0x7FFFF + ((a >> 20) & 1)) >> 20
    tiny = (a.to(tl.float32, bitcast=True) + 16384.0).to(tl.uint32, bitcast=True) - 0x46800000
    r = tl.where(a >= (121 << 23), normal, tiny) | (sign >> 24)
    tl.store(q_ptr + row * M + j, r.to(tl.uint8), mask=mask)


@triton.jit
def _fp8_decode_kernel(q_ptr, scale_ptr, x_ptr, M, C, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    j = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = j < M
    b = tl.load(q_ptr + row * M + j, mask=mask, other=0).to(tl.uint32)
    e = (b >> 3) & 15
    m = b & 7
    sign = (b & 0x80) << 24
    normal = (sign | ((e + 120) << 23) | (m << 20)).to(tl.float32, bitcast=True)
    tiny = m.to(tl.float32) * 0.001953125  # subnormal: m * 2^-9
    tiny = tl.where(sign != 0, -tiny, tiny)
    v = tl.where(e == 0, tiny, normal)
    v = tl.where((b & 0x7F) == 0x7F, float("nan"), v)
    tl.store(x_ptr + row * M + j, v * tl.load(scale_ptr + row % C), mask=mask)


def bf16_encode(x: torch.Tensor) -> torch.Tensor:
    q = torch.empty(x.shape, dtype=torch.bfloat16, device=x.device)
    _bf16_encode_kernel[(triton.cdiv(x.numel(), BLOCK),)](x, q.view(torch.uint16), x.numel(),
                                                          BLOCK=BLOCK, enable_fp_fusion=False)
    return q


def bf16_decode(q: torch.Tensor) -> torch.Tensor:
    x = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    _bf16_decode_kernel[(triton.cdiv(q.numel(), BLOCK),)](q.view(torch.uint16), x, q.numel(),
                                                          BLOCK=BLOCK, enable_fp_fusion=False)
    return x


def channel_amax(x: torch.Tensor) -> torch.Tensor:
    """(B, C, ...) -> (C,) max |x| per channel: per-block maxima, then a tiny torch max."""
    b, c, m = _rows(x)
    nb = triton.cdiv(m, BLOCK)
    part = torch.empty((b * c, nb), dtype=torch.float32, device=x.device)
    _amax_kernel[(b * c, nb)](x, part, m, nb, BLOCK=BLOCK)
    return part.view(b, c, nb).amax(dim=(0, 2))


def fp8_encode(x: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    b, c, m = _rows(x)
    q = torch.empty(x.shape, dtype=torch.float8_e4m3fn, device=x.device)
    _fp8_encode_kernel[(b * c, triton.cdiv(m, BLOCK))](x, inv, q.view(torch.uint8), m, c,
                                                       BLOCK=BLOCK, enable_fp_fusion=False)
    return q


def fp8_decode(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    b, c, m = _rows(q)
    x = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    _fp8_decode_kernel[(b * c, triton.cdiv(m, BLOCK))](q.view(torch.uint8), scale, x, m, c,
                                                       BLOCK=BLOCK, enable_fp_fusion=False)
    return x


def _rows(x: torch.Tensor) -> tuple[int, int, int]:
    b, c = x.shape[:2]
    return b, c, x.numel() // max(b * c, 1)
