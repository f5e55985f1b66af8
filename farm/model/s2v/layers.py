"""Building blocks of the S2V DiT: the Wan2.1 block with per-segment modulation.

Tokens of one forward are three segments, in this order:

    [ noisy latents (L) | reference image (R) | motion history (M) ]

The noisy tokens are modulated by the timestep t, the other two by timestep 0 (the
official `zero_timestep`): every block gets e = (1, 6, 2, dim), index 0 for the first L
tokens, index 1 after them. The residual stream stays float32; linear layers run in
the module's dtype.

RoPE is 3-axis (frame, height, width), given per token as complex multipliers; positions
may be negative (motion history lies before frame 0) or far away (the reference sits at
frame 30). A negative position p uses conj(freqs[|p|]) = freqs at p.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return ((xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x)
                * self.weight)


def layer_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm without affine parameters, in float32."""
    return F.layer_norm(x.float(), x.shape[-1:], eps=eps)


# ---------------------------------------------------------------- rotary positions

def rope_table(head_dim: int, max_len: int = 1024, theta: float = 10000.0) -> torch.Tensor:
    """(max_len, head_dim / 2) complex128: frame, height and width parts side by side."""
    def part(dim: int) -> torch.Tensor:  # on the CPU even under a meta-device context
        inv = 1.0 / torch.pow(theta, torch.arange(0, dim, 2, dtype=torch.float64,
                                                  device="cpu").div(dim))
        angles = torch.outer(torch.arange(max_len, dtype=torch.float64, device="cpu"), inv)
        return torch.polar(torch.ones_like(angles), angles)
    d = head_dim
    return torch.cat([part(d - 4 * (d // 6)), part(2 * (d // 6)), part(2 * (d // 6))], dim=1)


def spread(start: int, span: int, count: int) -> list[int]:
    """`count` integer positions spread over [start, start + span) (a pooled grid samples
    the positions of the full-resolution grid it covers)."""
    return np.linspace(start, start + span - 1, count).astype(int).tolist()


def grid_rope(table: torch.Tensor, frames: list[int], rows: list[int],
              cols: list[int]) -> torch.Tensor:
    """Multipliers of a (frames x rows x cols) token grid, row-major: (N, head_dim / 2)."""
    c = table.shape[1]
    ft, ht, wt = table.split([c - 2 * (c // 3), c // 3, c // 3], dim=1)
    f = torch.stack([ft[abs(p)].conj() if p < 0 else ft[p] for p in frames])  # (F, cf)
    nf, nh, nw = len(frames), len(rows), len(cols)
    return torch.cat([f.view(nf, 1, 1, -1).expand(nf, nh, nw, -1),
                      ht[rows].view(1, nh, 1, -1).expand(nf, nh, nw, -1),
                      wt[cols].view(1, 1, nw, -1).expand(nf, nh, nw, -1)],
                     dim=-1).reshape(nf * nh * nw, -1)


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """x (B, S, heads, d) times freqs (S, d / 2) complex, in float64; returns float32."""
    b, s, n, d = x.shape
    xc = torch.view_as_complex(x.to(torch.float64).reshape(b, s, n, d // 2, 2))
    return torch.view_as_real(xc * freqs.view(1, s, 1, d // 2)).flatten(3).float()


# ---------------------------------------------------------------- attention

class Attention(nn.Module):
    """Multi-head attention with RMS-normed q and k over all heads (Wan's qk_norm)."""

    def __init__(self, dim: int, heads: int, eps: float = 1e-6):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                freqs: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention (context None, with RoPE) or cross-attention to `context`."""
        ctx = x if context is None else context
        dtype = self.q.weight.dtype
        x, ctx = x.to(dtype), ctx.to(dtype)
        b, n = x.shape[0], self.heads
        q = self.norm_q(self.q(x)).view(b, x.shape[1], n, -1)      # (B, S, heads, d)
        k = self.norm_k(self.k(ctx)).view(b, ctx.shape[1], n, -1)  # (B, S', heads, d)
        v = self.v(ctx).view(b, ctx.shape[1], n, -1)
        if freqs is not None:
            q, k = apply_rope(q, freqs).to(dtype), apply_rope(k, freqs).to(dtype)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                             v.transpose(1, 2))
        return self.o(out.transpose(1, 2).flatten(2))  # (B, S, dim)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, split: int) -> torch.Tensor:
    """x (B, S, dim) float32; shift / scale (B, 2, dim): segment 0 for tokens [0, split),
    segment 1 after."""
    head = x[:, :split] * (1 + scale[:, 0:1]) + shift[:, 0:1]
    tail = x[:, split:] * (1 + scale[:, 1:2]) + shift[:, 1:2]
    return torch.cat([head, tail], dim=1)


def gate(y: torch.Tensor, g: torch.Tensor, split: int) -> torch.Tensor:
    return torch.cat([y[:, :split].float() * g[:, 0:1], y[:, split:].float() * g[:, 1:2]], dim=1)


class Block(nn.Module):
    """Wan2.1 DiT block: self-attention, text cross-attention, MLP; adaLN per segment."""

    def __init__(self, dim: int, ffn_dim: int, heads: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.attn = Attention(dim, heads, eps)
        self.text_norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=True)
        self.text_attn = Attention(dim, heads, eps)
        self.mlp = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(ffn_dim, dim))
        self.mod = nn.Parameter(torch.randn(1, 6, dim) / math.sqrt(dim))

    def forward(self, x: torch.Tensor, e: torch.Tensor, split: int, freqs: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
        """x (B, S, dim) float32, e (B, 6, 2, dim) float32, context (B, text_len, dim)."""
        # 1. shift / scale / gate for attention and MLP, per segment   6 x (B, 2, dim)
        m = (self.mod.float().unsqueeze(2) + e).unbind(1)
        dtype = self.mlp[0].weight.dtype
        # 2. self-attention
        h = modulate(layer_norm(x, self.eps), m[0], m[1], split)
        x = x + gate(self.attn(h.to(dtype), freqs=freqs), m[2], split)
        # 3. text cross-attention
        n = self.text_norm
        h = F.layer_norm(x, x.shape[-1:], n.weight.float(), n.bias.float(), self.eps)
        x = x + self.text_attn(h.to(dtype), context).float()
        # 4. MLP
        h = modulate(layer_norm(x, self.eps), m[3], m[4], split)
        return x + gate(self.mlp(h.to(dtype)), m[5], split)


def sinusoid(dim: int, t: torch.Tensor) -> torch.Tensor:
    """(N,) timesteps -> (N, dim) float32 [cos | sin], frequencies 10000^(-i / (dim / 2))."""
    half = dim // 2
    pos = t.to(torch.float64)
    angles = torch.outer(pos, torch.pow(10000, -torch.arange(half, dtype=torch.float64,
                                                             device=pos.device).div(half)))
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).float()
