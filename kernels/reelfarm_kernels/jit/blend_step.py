"""_blend_step_kernel: one program steps BLOCK latents of one (batch, channel, frame) row.

    grid (B * C * F, ceil(h * w / BLOCK)); row r = (b, c) * F + f. Per-row scalars (the
    frame, each source's weight on it) are loaded once; sources missing the frame have
    weight 0 and masked loads, which add exact zeros and keep the ascending order.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from reelfarm_kernels.blend_step import MAX_SOURCES, BhUpdate, StepCoefficients, StepResult

BLOCK = 1024


@triton.jit
def _accumulate(num, den, p_ptr, w_ptr, start, n, s_bc, s_f, bc, f, s, smask):
    inside = (f >= start) & (f < start + n)
    w = tl.load(w_ptr + f)  # weights in my frame coordinates, 0 where the source is absent
    # broadcast the row's scalar condition explicitly: the interpreter rejects the mask
    # that `smask & inside` (block & scalar) gives
    mask = smask & (tl.zeros_like(s) + inside.to(tl.int32) != 0)
    p = tl.load(p_ptr + bc * s_bc + (f - start) * s_f + s, mask=mask, other=0.0)
    return num + w * p, den + w


@triton.jit
def _blend_step_kernel(out_ptr, x0_ptr, xc_ptr, x_ptr, m0_ptr, m1_ptr, last_ptr,
                       p0, w0, st0, n0, sbc0, sf0, p1, w1, st1, n1, sbc1, sf1,
                       p2, w2, st2, n2, sbc2, sf2, p3, w3, st3, n3, sbc3, sf3,
                       F, S, sigma, dt,
                       c_ratio, c_lin, c_gain, c_rk, c_hist, c_new,
                       p_ratio, p_lin, p_gain, p_rk, p_hist,
                       NSRC: tl.constexpr, BLEND: tl.constexpr, EULER: tl.constexpr,
                       CORRECT: tl.constexpr, C2: tl.constexpr, P2: tl.constexpr,
                       BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    bc = row // F
    f = row % F
    s = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    smask = s < S
    offs = row * S + s
    # 1. blended prediction v
    if BLEND:
        num = tl.zeros((BLOCK,), dtype=tl.float32)
        den = 0.0
        num, den = _accumulate(num, den, p0, w0, st0, n0, sbc0, sf0, bc, f, s, smask)
        if NSRC > 1:
            num, den = _accumulate(num, den, p1, w1, st1, n1, sbc1, sf1, bc, f, s, smask)
        if NSRC > 2:
            num, den = _accumulate(num, den, p2, w2, st2, n2, sbc2, sf2, bc, f, s, smask)
        if NSRC > 3:
            num, den = _accumulate(num, den, p3, w3, st3, n3, sbc3, sf3, bc, f, s, smask)
        v = num / den
    else:
        v = tl.load(p0 + bc * sbc0 + f * sf0 + s, mask=smask)
    x = tl.load(x_ptr + offs, mask=smask)
    # 2. the solver update
    if EULER:
        tl.store(out_ptr + offs, x + dt * v, mask=smask)
    else:
        x0 = x - sigma * v
        xc = x
        if CORRECT or P2:
            m0 = tl.load(m0_ptr + offs, mask=smask)
        if CORRECT:
            res = c_new * (x0 - m0)
            if C2:
                m1 = tl.load(m1_ptr + offs, mask=smask)
                res = c_hist * ((m1 - m0) / c_rk) + res
            last = tl.load(last_ptr + offs, mask=smask)
            xc = (c_ratio * last - c_lin * m0) - c_gain * res
            tl.store(xc_ptr + offs, xc, mask=smask)
        xn = p_ratio * xc - p_lin * x0
        if P2:
            xn = xn - p_gain * (p_hist * ((m0 - x0) / p_rk))
        tl.store(out_ptr + offs, xn, mask=smask)
        tl.store(x0_ptr + offs, x0, mask=smask)


def launch(sources, sample: torch.Tensor, coeffs: StepCoefficients, m0, m1, last) -> StepResult:
    b, c, f, h, w = sample.shape
    x = sample.contiguous()
    out = torch.empty_like(x)
    unipc = coeffs.kind == "unipc"
    corr, pred = coeffs.corrector, coeffs.predictor
    x0 = torch.empty_like(x) if unipc else None
    xc = torch.empty_like(x) if corr is not None else None
    hist = [t.contiguous() if t is not None else x for t in (m0, m1, last)]  # x: never read
    args = []
    for k in range(MAX_SOURCES):
        args += _source_args(sources[k] if k < len(sources) else sources[0], f)
    cc = corr or BhUpdate(1, 0.0, 0.0, 0.0)
    pp = pred or BhUpdate(1, 0.0, 0.0, 0.0)
    grid = (b * c * f, triton.cdiv(h * w, BLOCK))
    _blend_step_kernel[grid](
        out, x0 if x0 is not None else out, xc if xc is not None else out, x, *hist, *args,
        f, h * w, coeffs.sigma, coeffs.dt,
        cc.ratio, cc.lin, cc.gain, cc.rk, cc.rho_hist, cc.rho_new,
        pp.ratio, pp.lin, pp.gain, pp.rk, pp.rho_hist,
        NSRC=len(sources), BLEND=sources[0].weights is not None, EULER=not unipc,
        CORRECT=corr is not None, C2=corr is not None and corr.order == 2,
        P2=unipc and pred.order == 2, BLOCK=BLOCK, enable_fp_fusion=False)
    if not unipc:
        return StepResult(out, None, None)
    return StepResult(out, x0, xc if xc is not None else sample)


def _source_args(src, num_frames: int) -> list:
    """(pointer, weights in my frame coordinates, start, n, (b, c) stride, frame stride)."""
    p = src.pred
    n = p.shape[2]
    mergeable = p.shape[0] == 1 or p.stride(0) == p.shape[1] * p.stride(1)
    if not (p.stride(4) == 1 and p.stride(3) == p.shape[4] and mergeable):
        p = p.contiguous()  # the kernel walks (b, c) rows, frames and contiguous planes
    weights = torch.zeros(num_frames, dtype=torch.float32, device=p.device)
    if src.weights is not None:
        weights[src.start:src.start + n] = src.weights
    return [p, weights, src.start, n, p.stride(1), p.stride(2)]
