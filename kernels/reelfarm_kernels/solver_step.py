"""diffusers schedulers driven by the fused blend + step: host scalars and state bookkeeping.

`scheduler_step(scheduler, sources, t, sample)` equals
`scheduler.step(blend(sources), t, sample)` and leaves the scheduler in the state step()
would (step index, UniPC model_outputs, timestep_list, last_sample, orders), so a phase can
switch between the two paths at any step and its handoff stays the same.

Supported: FlowMatchEulerDiscreteScheduler (deterministic, one timestep per sample) and
UniPCMultistepScheduler with flow sigmas, flow prediction, predict_x0, bh2, solver_order
<= 2 and no thresholding: Wan's configurations. Others raise ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reelfarm_kernels.blend_step import BhUpdate, Source, StepCoefficients, blend_step


def scheduler_step(scheduler, sources: Sequence[Source], timestep, sample: torch.Tensor, *,
                   use_triton: bool | None = None) -> torch.Tensor:
    """One solver step on the blended prediction; returns the new latents."""
    if scheduler.step_index is None:
        scheduler._init_step_index(timestep)
    coeffs = step_coefficients(scheduler)
    if coeffs.kind == "euler":
        out = blend_step(sources, sample, coeffs, use_triton=use_triton)
        scheduler._step_index += 1
        return out.prev_sample
    outs = scheduler.model_outputs
    out = blend_step(sources, sample, coeffs, outs[-1], outs[-2] if len(outs) > 1 else None,
                     scheduler.last_sample, use_triton=use_triton)
    # the bookkeeping of UniPCMultistepScheduler.step, in its order
    for i in range(scheduler.config.solver_order - 1):
        outs[i] = outs[i + 1]
        scheduler.timestep_list[i] = scheduler.timestep_list[i + 1]
    outs[-1] = out.model_output
    scheduler.timestep_list[-1] = timestep
    scheduler.this_order = coeffs.predictor.order
    scheduler.last_sample = out.corrected
    if scheduler.lower_order_nums < scheduler.config.solver_order:
        scheduler.lower_order_nums += 1
    scheduler._step_index += 1
    return out.prev_sample


def supports(scheduler) -> bool:
    """Whether scheduler_step can drive this scheduler (else it raises ValueError)."""
    try:
        (_check_unipc if hasattr(scheduler, "model_outputs") else _check_euler)(scheduler)
    except (ValueError, AttributeError):  # AttributeError: not a diffusers flow scheduler
        return False
    return True


def step_coefficients(scheduler) -> StepCoefficients:
    """The scalars of the scheduler's next step (its step_index must be set)."""
    i = scheduler.step_index
    sig = scheduler.sigmas
    if not hasattr(scheduler, "model_outputs"):
        _check_euler(scheduler)
        return StepCoefficients("euler", dt=(sig[i + 1] - sig[i]).item())
    _check_unipc(scheduler)
    cfg = scheduler.config
    corrector = None
    if i > 0 and (i - 1) not in scheduler.disable_corrector and scheduler.last_sample is not None:
        q = scheduler.this_order  # the corrector runs at the previous predictor's order
        corrector = _bh(sig, i, i - 1, i - 2 if q == 2 else None, corrector=True)
    order = (min(cfg.solver_order, len(scheduler.timesteps) - i) if cfg.lower_order_final
             else cfg.solver_order)
    p = min(order, scheduler.lower_order_nums + 1)
    predictor = _bh(sig, i + 1, i, i - 1 if p == 2 else None, corrector=False)
    return StepCoefficients("unipc", sigma=sig[i].item(), corrector=corrector, predictor=predictor)


def _bh(sigmas: torch.Tensor, t: int, s0: int, s1: int | None, corrector: bool) -> BhUpdate:
    """One bh2 update from sigma index s0 to t, with the torch ops diffusers uses
    (multistep_uni_p_bh_update / multistep_uni_c_bh_update), so the scalars match."""
    lam = {k: _lambda(sigmas[k]) for k in (t, s0, s1) if k is not None}
    h = lam[t] - lam[s0]
    hh = -h  # predict_x0
    h_phi_1 = torch.expm1(hh)
    b_h = torch.expm1(hh)  # bh2
    alpha_t = 1 - sigmas[t]
    ratio, lin, gain = ((sigmas[t] / sigmas[s0]).item(), (alpha_t * h_phi_1).item(),
                        (alpha_t * b_h).item())
    if s1 is None:
        return BhUpdate(1, ratio, lin, gain, rho_new=0.5 if corrector else 0.0)
    rk = (lam[s1] - lam[s0]) / h
    if not corrector:
        return BhUpdate(2, ratio, lin, gain, rk=rk.item(), rho_hist=0.5)
    # corrector of order 2: rhos_c = solve(R, b), R = [[1, 1], [rk, 1]]
    h_phi_k = h_phi_1 / hh - 1
    b = [h_phi_k * 1 / b_h]
    h_phi_k = h_phi_k / hh - 1 / 2
    b.append(h_phi_k * 2 / b_h)
    r = torch.stack([torch.stack([torch.ones_like(rk), torch.ones_like(rk)]),
                     torch.stack([rk, torch.ones_like(rk)])])
    rhos = torch.linalg.solve(r, torch.stack(b))
    return BhUpdate(2, ratio, lin, gain, rk=rk.item(), rho_hist=rhos[0].item(),
                    rho_new=rhos[1].item())


def _lambda(sigma: torch.Tensor) -> torch.Tensor:
    alpha = 1 - sigma  # flow sigmas
    return torch.log(alpha) - torch.log(sigma)


def _check_euler(scheduler) -> None:
    if scheduler.config.stochastic_sampling:
        raise ValueError("the fused step supports deterministic Euler only "
                         "(stochastic_sampling=False)")


def _check_unipc(scheduler) -> None:
    cfg = scheduler.config
    ok = (cfg.prediction_type == "flow_prediction" and cfg.use_flow_sigmas and scheduler.predict_x0
          and cfg.solver_type == "bh2" and cfg.solver_order <= 2 and not cfg.thresholding
          and scheduler.solver_p is None)
    if not ok:
        raise ValueError("the fused step supports UniPC with flow sigmas, flow prediction, "
                         "predict_x0, bh2, solver_order <= 2 and no thresholding")
