"""Whether a launcher runs its Triton kernel or its torch reference, and shared checks.

Triton launches on CUDA tensors, and on CPU tensors only under its interpreter
(TRITON_INTERPRET=1; without it a CPU launch fails with "0 active drivers"). Everything
else runs the reference, which computes the same values with plain torch ops.
"""

from __future__ import annotations

import os

import torch

_TRUE = ("1", "true", "on", "yes")


def use_kernel(use_triton: bool | None, *tensors: torch.Tensor) -> bool:
    """Decide kernel vs reference: None = kernel where Triton can run, True = kernel or
    raise, False = reference."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")
    if use_triton is False:
        return False
    why = _why_not(devices.pop())
    if why is not None and use_triton:
        raise RuntimeError(f"Triton cannot run here: {why}")
    return why is None


def _why_not(device: torch.device) -> str | None:
    if device.type not in ("cpu", "cuda"):
        return f"no Triton backend for {device.type} tensors"
    # NOTE: Triton reads this variable itself (triton.knobs); we only mirror its decision
    # so that CPU callers never import triton for a launch that cannot work.
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET", "").lower() not in _TRUE:
        return "CPU tensors need TRITON_INTERPRET=1"
    try:
        import triton  # noqa: F401
    except ImportError:
        return "triton is not installed (pip install 'reelfarm[kernels]')"
    return None


def check_dtype(name: str, t: torch.Tensor, allowed: tuple[torch.dtype, ...]) -> None:
    if t.dtype not in allowed:
        raise ValueError(f"{name} must be one of {[str(d) for d in allowed]}, got {t.dtype}")


def check_shape(name: str, t: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
