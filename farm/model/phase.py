"""The phase runner: run steps [i, j) of ONE expert on one segment, resuming the solver.

The loop is WanPipeline's (diffusers `pipeline_wan.py`), unrolled so that it can start
at any step, stop at the expert boundary, hand its solver state over, and blend window
overlaps with its neighbours every step:

    for each step i in [start, stop):
        1. model input        latents (1, C, F, h, w) -> expert dtype (+ conditioning)
        2. guided prediction  uncond + g * (cond - uncond)          (two forwards)
        3. halo blend         windows: sum_k w_k p_k / sum_k w_k on shared frames
        4. solver step        latents <- scheduler.step(pred, t_i, latents)
"""

from __future__ import annotations

import torch

from farm.engine.exchange import Exchange
from farm.engine.orders import DenoiseOrder
from farm.model.condition import Condition, first_frame_mask
from farm.model.solver import Handoff, export_state, import_state
from farm.model.text import PromptEmbeds
from farm.plan.segments import Window, blend_weights, neighbours


@torch.no_grad()
def run_phase(transformer, scheduler, order: DenoiseOrder, embeds: PromptEmbeds,
              latents: torch.Tensor, handoff: Handoff | None, exchange: Exchange, *,
              expand_timesteps: bool = False, condition: Condition | None = None) -> Handoff:
    """Run the order's steps with `transformer`; `latents` is used when handoff is None."""
    device = transformer.device
    dtype = transformer.dtype
    # 0. The solver as it was after the previous phase (or fresh at step 0).
    scheduler.set_timesteps(order.model.num_steps, device=device)
    if handoff is None:
        if order.start_step != 0:
            raise ValueError(f"{order.segment_id}: no handoff given for a phase starting at "
                             f"step {order.start_step}")
        scheduler.set_begin_index(0)
        latents = latents.to(device, torch.float32)
    else:
        import_state(scheduler, handoff.state, device)
        if handoff.state.step_index != order.start_step:
            raise ValueError(f"{order.segment_id}: handoff is at step {handoff.state.step_index}, "
                             f"phase starts at {order.start_step}")
        latents = handoff.latents.to(device, torch.float32)
    prompt = embeds.prompt.to(device, dtype)
    negative = embeds.negative.to(device, dtype) if embeds.negative is not None else None
    halo = _Halo(order, device) if len(order.gang) > 1 else None
    cond = condition.latents.to(device) if condition is not None else None
    # TI2V: latent 0 is the given image, at timestep 0 (mask 0); elsewhere noise (mask 1).
    mask = (first_frame_mask(latents) if condition is not None and condition.kind == "first_frame"
            else torch.ones(latents.shape, dtype=torch.float32, device=device))

    for i in range(order.start_step, order.stop_step):
        t = scheduler.timesteps[i]
        # 1. model input
        if cond is None:
            model_input = latents.to(dtype)
        elif condition.kind == "concat":  # (1, 16 + 20, F, h, w)
            model_input = torch.cat([latents, cond], dim=1).to(dtype)
        else:
            model_input = ((1 - mask) * cond + mask * latents).to(dtype)
        timestep = _timestep(t, latents, mask if expand_timesteps else None)
        # 2. guided prediction
        pred = transformer(hidden_states=model_input, timestep=timestep,
                           encoder_hidden_states=prompt, return_dict=False)[0]
        if order.guidance > 1.0:
            if negative is None:
                raise ValueError(f"{order.segment_id}: guidance {order.guidance} needs negative embeddings")
            uncond = transformer(hidden_states=model_input, timestep=timestep,
                                 encoder_hidden_states=negative, return_dict=False)[0]
            pred = uncond + order.guidance * (pred - uncond)
        # 3. halo blend with the neighbouring windows
        if halo is not None:
            pred = halo.blend(i, pred, exchange)
        # 4. solver step
        latents = scheduler.step(pred, t, latents, return_dict=False)[0]
    if cond is not None and condition.kind == "first_frame" and order.stop_step == order.model.num_steps:
        latents = (1 - mask) * cond + mask * latents  # the clean first frame, as diffusers
    return Handoff(latents, export_state(scheduler))


def _timestep(t: torch.Tensor, latents: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return t.expand(latents.shape[0])
    # Wan2.2 TI2V: one timestep per token, 0 on the given first frame; (1, F * h/2 * w/2)
    return (mask[0][0][:, ::2, ::2] * t).flatten().unsqueeze(0).expand(latents.shape[0], -1)


class _Halo:
    """Blends a window's prediction with its neighbours' on the frames they share.

    Every window sums the contributions of the windows covering a frame in ascending
    window order, so all windows compute bit-identical blended values on shared frames
    and their (element-wise) solvers stay in lock-step.
    """

    def __init__(self, order: DenoiseOrder, device: torch.device):
        self.me = order.member
        self.gang = order.gang
        self.window = order.window
        self.nbrs = neighbours(order.gang, order.member)
        self.weights = {k: torch.tensor(blend_weights(self.gang[k]), dtype=torch.float32,
                                        device=device).view(1, 1, -1, 1, 1)
                        for k in (self.me, *self.nbrs)}

    def _local(self, k: int) -> tuple[Window, Window]:
        """Frames shared with window k, in my coordinates and in k's."""
        w, o = self.window, self.gang[k]
        lo, hi = max(w.start, o.start), min(w.stop, o.stop)
        return Window(lo - w.start, hi - w.start), Window(lo - o.start, hi - o.start)

    def blend(self, step: int, pred: torch.Tensor, exchange: Exchange) -> torch.Tensor:
        out = {k: pred[:, :, self._local(k)[0].start:self._local(k)[0].stop] for k in self.nbrs}
        got = exchange.swap(step, self.me, out)
        num = torch.zeros_like(pred, dtype=torch.float32)
        den = torch.zeros((1, 1, pred.shape[2], 1, 1), dtype=torch.float32, device=pred.device)
        for k in sorted((self.me, *self.nbrs)):
            if k == self.me:
                mine, theirs, value = Window(0, pred.shape[2]), Window(0, pred.shape[2]), pred
            else:
                mine, theirs = self._local(k)
                value = got[k]
            w = self.weights[k][:, :, theirs.start:theirs.stop]
            num[:, :, mine.start:mine.stop] += w * value.float()
            den[:, :, mine.start:mine.stop] += w
        return (num / den).to(pred.dtype)
