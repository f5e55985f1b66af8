"""Lossy packing of phase handoff tensors for bandwidth-limited links (explicit opt-in).

A handoff (latents + UniPC model_outputs + last_sample) is float32: 4 bytes a value. The
default handoff stays exact; a link that cannot carry it may opt in to

    bf16   2 bytes a value: round to nearest even (torch's .to(torch.bfloat16))
    fp8    1 byte a value + 4 per channel: e4m3fn with a per-channel scale
           scale_c = amax_c / 448 (1 where a channel is all zero), q = e4m3(clamp(x / scale_c))
           computed as x * (1 / scale_c), rounded to nearest even (torch's .to(float8_e4m3fn))

    x (B, C, ...) fp32, channels on dim 1  ->  Packed(data (B, C, ...) bf16 | float8_e4m3fn,
                                                       scale (C,) fp32 for fp8)

The kernels compute the rounding with integer bit operations, so they equal torch's
conversions bit for bit (Triton's own float casts round differently in its interpreter).
Inputs must be finite (latents are): NaN stays NaN in bf16 but its bits may differ from
torch's, and one NaN or inf in a channel spoils that channel's fp8 scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reelfarm_kernels._dispatch import check_dtype, use_kernel

CODECS = ("bf16", "fp8")
FP8_MAX = 448.0  # largest finite e4m3fn value


@dataclass(frozen=True)
class Packed:
    codec: str  # "bf16" | "fp8"
    data: torch.Tensor  # the input's shape; torch.bfloat16 or torch.float8_e4m3fn
    scale: torch.Tensor | None = None  # fp8: (C,) fp32, x ~= data * scale per channel

    @property
    def nbytes(self) -> int:
        extra = 0 if self.scale is None else self.scale.numel() * self.scale.element_size()
        return self.data.numel() * self.data.element_size() + extra


def pack(x: torch.Tensor, codec: str, *, use_triton: bool | None = None) -> Packed:
    """Encode one fp32 tensor (B, C, ...); the kernel where Triton runs, else the reference."""
    _check(x, codec)
    if not use_kernel(use_triton, x):
        return pack_reference(x, codec)
    from reelfarm_kernels.jit import handoff_codec as jit

    x = x.contiguous()
    if codec == "bf16":
        return Packed(codec, jit.bf16_encode(x))
    scale, inv = _scales(jit.channel_amax(x))
    return Packed(codec, jit.fp8_encode(x, inv), scale)


def unpack(p: Packed, *, use_triton: bool | None = None) -> torch.Tensor:
    """Decode to fp32."""
    if not use_kernel(use_triton, p.data):
        return unpack_reference(p)
    from reelfarm_kernels.jit import handoff_codec as jit

    data = p.data.contiguous()
    return jit.bf16_decode(data) if p.codec == "bf16" else jit.fp8_decode(data, p.scale)


def pack_reference(x: torch.Tensor, codec: str) -> Packed:
    _check(x, codec)
    if codec == "bf16":
        return Packed(codec, x.to(torch.bfloat16))
    dims = [d for d in range(x.dim()) if d != 1]
    scale, inv = _scales(x.abs().amax(dim=dims))
    q = (x * _per_channel(inv, x)).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return Packed(codec, q, scale)


def unpack_reference(p: Packed) -> torch.Tensor:
    if p.codec == "bf16":
        return p.data.to(torch.float32)
    return p.data.to(torch.float32) * _per_channel(p.scale, p.data)


def encode_tensors(tensors: dict[str, torch.Tensor], codec: str) -> dict[str, torch.Tensor]:
    """Wire form for safetensors: `name` -> payload, plus `name.scale` for fp8."""
    out = {}
    for name, t in tensors.items():
        p = pack(t, codec)
        out[name] = p.data
        if p.scale is not None:
            out[f"{name}.scale"] = p.scale
    return out


def decode_tensors(tensors: dict[str, torch.Tensor], codec: str) -> dict[str, torch.Tensor]:
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    return {name: unpack(Packed(codec, t, tensors.get(f"{name}.scale")))
            for name, t in tensors.items() if not name.endswith(".scale")}


def _scales(amax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C,) amax -> (scale, 1 / scale); all-zero channels get scale 1."""
    scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))
    return scale, 1 / scale


def _per_channel(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, *([1] * (like.dim() - 2)))


def _check(x: torch.Tensor, codec: str) -> None:
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    check_dtype("x", x, (torch.float32,))
    if x.dim() < 2:
        raise ValueError(f"x must be (B, C, ...) with channels on dim 1, got {tuple(x.shape)}")
