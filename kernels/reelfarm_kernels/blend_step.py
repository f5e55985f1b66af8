"""Window blend + solver update: the per-step halo blend fused with the Euler / UniPC step.

Per solver step a window blends its prediction with its neighbours' and then steps its
solver: as diffusers' `scheduler.step`, about a dozen elementwise torch ops, each a full
pass over the latents. Here it is one pass (farm.model.phase runs it for windows). The host
computes the step's scalar coefficients (reelfarm_kernels.solver_step); the kernel reads
every input once and writes once:

    v  = sum_k w_k p_k / sum_k w_k      over the windows covering a frame, ascending order
    Euler:   x_next = x + dt * v
    UniPC (bh2, flow prediction, predict x0; orders 1 and 2, as diffusers computes it):
      x0  = x - sigma * v                                  model output, converted
      xc  = C(last_sample; m0, m1, x0)   if the corrector runs, else x
      x_next = P(xc; x0, m0)
    with one bh update U(base; a, b, new) =
      ratio * base - lin * a - gain * (rho_hist * ((b - a) / rk) + rho_new * (new - a))
    (the rho_hist term only at order 2; rho_new only in the corrector).

    inputs   sources p_k (1, C, n_k, h, w) fp32, sample x, m0 = model_outputs[-1],
             m1 = model_outputs[-2], last_sample       (each (1, C, F, h, w) fp32)
    outputs  x_next, x0, xc                             (each (1, C, F, h, w) fp32)

Blending sums in ascending window order, so all windows compute identical values on
shared frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from reelfarm_kernels._dispatch import check_dtype, check_shape, use_kernel

MAX_SOURCES = 4  # windows covering one window's frames (itself included) the kernel takes


@dataclass(frozen=True)
class Source:
    """One window's prediction on the frames it shares with mine (mine: all my frames)."""

    pred: torch.Tensor  # (1, C, n, h, w) fp32
    start: int  # its first frame, in my frame coordinates
    weights: torch.Tensor | None = None  # (n,) fp32 blend weights; None: no blending at all


@dataclass(frozen=True)
class BhUpdate:
    """Scalars of one UniPC bh2 update (see the module docstring)."""

    order: int  # 1 or 2
    ratio: float  # sigma_t / sigma_s0
    lin: float  # alpha_t * h_phi_1
    gain: float  # alpha_t * B_h
    rk: float = 1.0  # order 2: (lambda_s1 - lambda_s0) / h
    rho_hist: float = 0.0  # order 2: weight of (m1 - m0) / rk
    rho_new: float = 0.0  # corrector: weight of (x0 - m0)


@dataclass(frozen=True)
class StepCoefficients:
    kind: str  # "euler" | "unipc"
    sigma: float = 0.0  # unipc: x0 = x - sigma * v
    dt: float = 0.0  # euler: sigma_next - sigma
    corrector: BhUpdate | None = None  # unipc, None: no corrector this step
    predictor: BhUpdate | None = None  # unipc


@dataclass(frozen=True)
class StepResult:
    prev_sample: torch.Tensor  # x_next: the latents after the step
    model_output: torch.Tensor | None  # unipc: x0, the new model_outputs[-1]
    corrected: torch.Tensor | None  # unipc: the new last_sample (the input sample if no corrector)


def blend_step(sources: Sequence[Source], sample: torch.Tensor, coeffs: StepCoefficients,
               m0: torch.Tensor | None = None, m1: torch.Tensor | None = None,
               last_sample: torch.Tensor | None = None, *,
               use_triton: bool | None = None) -> StepResult:
    """Blend + step in one pass where Triton runs (and <= MAX_SOURCES), else the reference."""
    needed = _check(sources, sample, coeffs, m0, m1, last_sample)
    tensors = [s.pred for s in sources] + [t for t in needed if t is not None]
    if len(sources) > MAX_SOURCES and use_triton is not True:
        use_triton = False
    if not use_kernel(use_triton, sample, *tensors):
        return blend_step_reference(sources, sample, coeffs, m0, m1, last_sample)
    from reelfarm_kernels.jit.blend_step import launch

    return launch(sources, sample, coeffs, *needed)


def blend_step_reference(sources: Sequence[Source], sample: torch.Tensor, coeffs: StepCoefficients,
                         m0: torch.Tensor | None = None, m1: torch.Tensor | None = None,
                         last_sample: torch.Tensor | None = None) -> StepResult:
    """The same arithmetic as unfused torch ops, in the kernel's order of operations."""
    v = blend_reference(sources, sample.shape[2])
    if coeffs.kind == "euler":
        return StepResult(sample + coeffs.dt * v, None, None)
    x0 = sample - coeffs.sigma * v
    xc = sample
    if coeffs.corrector is not None:
        xc = _bh_reference(coeffs.corrector, last_sample, m0, m1, x0)
    return StepResult(_bh_reference(coeffs.predictor, xc, x0, m0, None), x0, xc)


def blend_reference(sources: Sequence[Source], num_frames: int) -> torch.Tensor:
    """sum_k w_k p_k / sum_k w_k per frame, in ascending order (farm.model.phase's blend)."""
    if len(sources) == 1 and sources[0].weights is None:
        return sources[0].pred
    pred = sources[0].pred
    shape = (pred.shape[0], pred.shape[1], num_frames, *pred.shape[3:])
    num = torch.zeros(shape, dtype=torch.float32, device=pred.device)
    den = torch.zeros((1, 1, num_frames, 1, 1), dtype=torch.float32, device=pred.device)
    for s in sources:
        stop = s.start + s.pred.shape[2]
        w = s.weights.view(1, 1, -1, 1, 1)
        num[:, :, s.start:stop] += w * s.pred
        den[:, :, s.start:stop] += w
    return num / den


def _bh_reference(u: BhUpdate, base: torch.Tensor, a: torch.Tensor, b: torch.Tensor | None,
                  new: torch.Tensor | None) -> torch.Tensor:
    out = u.ratio * base - u.lin * a
    res = None
    if u.order == 2:
        res = u.rho_hist * ((b - a) / u.rk)
    if new is not None:
        term = u.rho_new * (new - a)
        res = term if res is None else res + term
    return out if res is None else out - u.gain * res


def _check(sources: Sequence[Source], sample: torch.Tensor, coeffs: StepCoefficients,
           m0, m1, last_sample) -> tuple[torch.Tensor | None, ...]:
    """Validate; return the history tensors this step reads: (m0, m1, last_sample)."""
    check_dtype("sample", sample, (torch.float32,))
    if sample.dim() != 5:
        raise ValueError(f"sample must be (B, C, F, h, w), got {tuple(sample.shape)}")
    b, c, f, h, w = sample.shape
    if not sources:
        raise ValueError("need at least one source (my own prediction)")
    if any(s.weights is None for s in sources) and (len(sources) > 1
                                                    or sources[0].pred.shape[2] != f):
        raise ValueError("only a single source covering every frame may come without weights")
    for k, s in enumerate(sources):
        check_dtype(f"sources[{k}].pred", s.pred, (torch.float32,))
        n = s.pred.shape[2]
        check_shape(f"sources[{k}].pred", s.pred, (b, c, n, h, w))
        if not 0 <= s.start <= s.start + n <= f:
            raise ValueError(f"sources[{k}] covers frames [{s.start}, {s.start + n}) "
                             f"outside [0, {f})")
        if s.weights is not None:
            check_dtype(f"sources[{k}].weights", s.weights, (torch.float32,))
            check_shape(f"sources[{k}].weights", s.weights, (n,))
    if coeffs.kind == "euler":
        return (None, None, None)
    if coeffs.kind != "unipc" or coeffs.predictor is None:
        raise ValueError(f"coefficients must be euler or unipc with a predictor, got {coeffs}")
    # the corrector reads last_sample, m0 (and m1 at order 2); the predictor m0 at order 2
    corr = coeffs.corrector
    reads = (corr is not None or coeffs.predictor.order == 2, corr is not None and corr.order == 2,
             corr is not None)
    for name, t, read in zip(("m0", "m1", "last_sample"), (m0, m1, last_sample), reads,
                             strict=True):
        if read and t is None:
            raise ValueError(f"this step reads {name}, got None")
        if read:
            check_dtype(name, t, (torch.float32,))
            check_shape(name, t, tuple(sample.shape))
    return tuple(t if read else None for t, read in zip((m0, m1, last_sample), reads, strict=True))
