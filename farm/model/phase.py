"""The phase runner: run steps [i, j) of ONE expert on one segment, resuming the solver.

The loop is WanPipeline's (diffusers `pipeline_wan.py`), unrolled so that it can start
at any step, stop at the expert boundary, hand its solver state over, and blend window
overlaps with its neighbours every step. `phase_steps` is a generator that yields
`(step, halos for my neighbours)` and is sent back the neighbours' halos, so the same code
runs a gang cooperatively in one thread (in process) or one member per process with a
blocking exchange (`run_phase`):

    for each step i in [start, stop):
        1. model input        latents (1, C, F, h, w) -> expert dtype (+ conditioning)
        2. guided prediction  uncond + g * (cond - uncond)          (two forwards)
                              gang (farm.model.gang): CFG rank 0 runs cond, rank 1
                              uncond, all-gathered; Ulysses ranks split the tokens
        3. halo blend         windows: sum_k w_k p_k / sum_k w_k on shared frames
        4. solver step        latents <- scheduler.step(pred, t_i, latents)

Windows fuse steps 3 and 4 into one pass over the latents (reelfarm_kernels.blend_step:
its Triton kernel where Triton runs, else its torch reference) when the prediction is
float32 and the solver is Wan's Euler or UniPC: there it does diffusers' arithmetic op for
op, so the latents and the solver state come out bit for bit as blend-then-step (measured
on CPU, reference and interpreted kernel: tests/model/test_windows_fused.py,
tests/kernels; on a GPU the kernel runs the same ops without FMA contraction, tested to
1e-6 of the magnitude). Other dtypes keep the two steps: diffusers' step rounds bf16 /
fp16 predictions in their own dtype, which a float32 pass cannot repeat.
"""

from __future__ import annotations

from collections.abc import Generator

import torch

from farm.engine.exchange import Exchange
from farm.engine.orders import DenoiseOrder
from farm.model.condition import Condition, first_frame_mask
from farm.model.gang import Gang
from farm.model.offload import run_device
from farm.model.solver import Handoff, export_state, import_state
from farm.model.speed import PhaseCache, phase_cache
from farm.model.text import PromptEmbeds
from farm.model.ulysses import sequence_parallel
from farm.plan.segments import Window, blend_weights, neighbours
from reelfarm_kernels.blend_step import MAX_SOURCES, Source, blend_reference
from reelfarm_kernels.solver_step import scheduler_step, supports

Halos = dict[int, torch.Tensor]


def run_phase(transformer, scheduler, order: DenoiseOrder, embeds: PromptEmbeds,
              latents: torch.Tensor | None, handoff: Handoff | None, exchange: Exchange, *,
              expand_timesteps: bool = False, condition: Condition | None = None) -> Handoff:
    """Run the order's steps, swapping halos through a blocking `exchange`."""
    steps = phase_steps(transformer, scheduler, order, embeds, latents, handoff,
                        expand_timesteps=expand_timesteps, condition=condition)
    return drive(steps, order.member, exchange)


def drive(steps: Generator[tuple[int, Halos], Halos, Handoff], member: int,
          exchange: Exchange) -> Handoff:
    try:
        step, out = next(steps)
        while True:
            step, out = steps.send(exchange.swap(step, member, out))
    except StopIteration as done:
        return done.value


def phase_steps(transformer, scheduler, order: DenoiseOrder, embeds: PromptEmbeds,
                latents: torch.Tensor | None, handoff: Handoff | None, *,
                expand_timesteps: bool = False, condition: Condition | None = None,
                gang: Gang | None = None) -> Generator[tuple[int, Halos], Halos, Handoff]:
    """Run the order's steps with `transformer`; `latents` is used when handoff is None.
    With a `gang`, this is one rank of the segment's gang (every rank returns the same).

    Grad mode is thread-local and a generator's `with` block would leak across its
    yields, so every compute block below is a @no_grad function of its own.
    """
    # The scene's step cache for this phase only (farm.model.speed): released, and its
    # state dropped, however the phase ends.
    with phase_cache(transformer, order.speed, f"{order.task_id}/{order.segment_id}",
                     order.stop_step - order.start_step, order.model.num_steps) as cache:
        run = _Run(transformer, scheduler, order, embeds, latents, handoff, expand_timesteps,
                   condition)
        run.gang, run.cache = gang, cache
        for i in range(order.start_step, order.stop_step):
            pred = run.predict(i)  # steps 1-2
            if run.halo is None:
                run.advance(i, pred)  # step 4
            else:  # steps 3-4
                run.blend_advance(i, pred, (yield i, run.halo.outgoing(pred)))
        done = run.finish()
    done.cache = cache.stats()
    return done


class _Run:
    """State of one member's phase between its steps."""

    @torch.no_grad()
    def __init__(self, transformer, scheduler, order: DenoiseOrder, embeds: PromptEmbeds,
                 latents: torch.Tensor | None, handoff: Handoff | None, expand_timesteps: bool,
                 condition: Condition | None):
        self.model, self.scheduler, self.order = transformer, scheduler, order
        # where it computes: an offloaded expert's weights wait in host memory
        device, self.dtype = run_device(transformer), transformer.dtype
        # 0. The solver as it was after the previous phase (or fresh at step 0).
        scheduler.set_timesteps(order.model.num_steps, device=device)
        if handoff is None:
            if order.start_step != 0 or latents is None:
                raise ValueError(f"{order.segment_id}: a phase starting at step {order.start_step} "
                                 "needs a handoff (or initial noise at step 0)")
            scheduler.set_begin_index(0)
            self.latents = latents.to(device, torch.float32)
        else:
            import_state(scheduler, handoff.state, device)
            if handoff.state.step_index != order.start_step:
                raise ValueError(f"{order.segment_id}: handoff is at step "
                                 f"{handoff.state.step_index}, "
                                 f"phase starts at {order.start_step}")
            self.latents = handoff.latents.to(device, torch.float32)
        self.prompt = embeds.prompt.to(device, self.dtype)
        self.negative = (embeds.negative.to(device, self.dtype) if embeds.negative is not None
                         else None)
        self.halo = _Halo(order, device) if len(order.gang) > 1 else None
        self.fusable = supports(scheduler)  # Wan's Euler / UniPC: the fused step's solvers
        self.condition = condition
        self.cond = (condition.latents.to(device)
                     if condition is not None and condition.latents is not None else None)
        # Extra transformer inputs (VACE control, Animate pose / face / image embedding).
        self.kw = condition.model_kwargs(device, self.dtype) if condition is not None else {}
        self.kw_uncond = (condition.model_kwargs(device, self.dtype, uncond=True)
                          if condition is not None else {})
        # TI2V: latent 0 is the given image, at timestep 0 (mask 0); elsewhere noise (mask 1).
        self.mask = (first_frame_mask(self.latents)
                     if condition is not None and condition.kind == "first_frame"
                     else torch.ones(self.latents.shape, dtype=torch.float32, device=device))
        self.expand = expand_timesteps
        self.gang: Gang | None = None  # set by phase_steps for a rank of a gang
        self.cache = PhaseCache(transformer, None, "", 0)  # exact unless phase_steps sets it

    @torch.no_grad()
    def predict(self, i: int) -> torch.Tensor:
        t = self.scheduler.timesteps[i]
        # 1. model input
        if self.cond is None:
            x = self.latents.to(self.dtype)
        elif self.condition.kind == "concat":  # (1, 16 + 20, F, h, w)
            x = torch.cat([self.latents, self.cond], dim=1).to(self.dtype)
        else:
            x = ((1 - self.mask) * self.cond + self.mask * self.latents).to(self.dtype)
        timestep = _timestep(t, self.latents, self.mask if self.expand else None)
        sigma = float(self.scheduler.sigmas[i])  # the step cache's context, as diffusers'
        if self.gang is not None:
            return self._predict_gang(x, timestep, i, sigma)
        # 2. guided prediction
        with self.cache.call("cond", i, sigma):
            pred = self.model(hidden_states=x, timestep=timestep,
                              encoder_hidden_states=self.prompt, return_dict=False, **self.kw)[0]
        g = self.order.guidance
        if g > 1.0:
            if self.negative is None:
                raise ValueError(f"{self.order.segment_id}: guidance {g} needs negative embeddings")
            with self.cache.call("uncond", i, sigma):
                uncond = self.model(hidden_states=x, timestep=timestep,
                                    encoder_hidden_states=self.negative, return_dict=False,
                                    **self.kw_uncond)[0]
            pred = uncond + g * (pred - uncond)
        return pred

    def _guidance(self) -> float:
        g = self.order.guidance
        if g > 1.0 and self.negative is None:
            raise ValueError(f"{self.order.segment_id}: guidance {g} needs negative embeddings")
        return g

    @torch.no_grad()
    def _predict_gang(self, x: torch.Tensor, timestep: torch.Tensor, i: int,
                      sigma: float) -> torch.Tensor:
        gang, g = self.gang, self._guidance()
        assert gang is not None

        def forward(embeds: torch.Tensor) -> torch.Tensor:  # (1, C, F, h, w), SP inside
            kw = self.kw_uncond if embeds is self.negative else self.kw
            kind = "uncond" if embeds is self.negative else "cond"
            with sequence_parallel(self.model, gang.seq), self.cache.call(kind, i, sigma):
                return self.model(hidden_states=x, timestep=timestep, encoder_hidden_states=embeds,
                                  return_dict=False, **kw)[0]
        # 2a. CFG parallel: rank 0 the conditional forward, rank 1 the unconditional one;
        #     all-gathered, so every rank holds both
        if gang.spec.cfg == 2:
            cond, uncond = gang.cfg_gather(forward(self.negative if gang.runs_uncond
                                                   else self.prompt))
        else:
            cond = forward(self.prompt)
            if g <= 1.0:
                return cond
            uncond = forward(self.negative)
        # 2b. the same guided prediction on every rank (bit-identical solver states)
        return uncond + g * (cond - uncond)

    @torch.no_grad()
    def blend_advance(self, i: int, pred: torch.Tensor, got: Halos) -> None:
        # 3-4. blend my prediction with my neighbours' and step, fused where bit-identical
        assert self.halo is not None
        sources = self.halo.sources(pred, got)  # float32, ascending window order
        if self.fusable and pred.dtype == torch.float32 and self.latents.dtype == torch.float32:
            t = self.scheduler.timesteps[i]
            self.latents = scheduler_step(self.scheduler, sources, t, self.latents,
                                          use_triton=self.halo.use_triton)
        else:  # the blend rounded to the prediction's dtype, as the model returned it
            self.advance(i, blend_reference(sources, pred.shape[2]).to(pred.dtype))

    @torch.no_grad()
    def advance(self, i: int, pred: torch.Tensor) -> None:
        # 4. solver step
        t = self.scheduler.timesteps[i]
        self.latents = self.scheduler.step(pred, t, self.latents, return_dict=False)[0]

    @torch.no_grad()
    def finish(self) -> Handoff:
        if (self.cond is not None and self.condition.kind == "first_frame"
                and self.order.stop_step == self.order.model.num_steps):
            # the clean first frame, as diffusers does after its loop
            self.latents = (1 - self.mask) * self.cond + self.mask * self.latents
        if (self.condition is not None and self.condition.prefix
                and self.order.stop_step == self.order.model.num_steps):
            # the clip's own frames: the reference frames in front are not decoded
            self.latents = self.latents[:, :, self.condition.prefix:]
        last = self.order.stop_step == self.order.model.num_steps
        lead = self.condition.lead if self.condition is not None and last else None
        return Handoff(self.latents, export_state(self.scheduler), lead)


def _timestep(t: torch.Tensor, latents: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return t.expand(latents.shape[0])
    # Wan2.2 TI2V: one timestep per token, 0 on the given first frame; (1, F * h/2 * w/2)
    return (mask[0][0][:, ::2, ::2] * t).flatten().unsqueeze(0).expand(latents.shape[0], -1)


class _Halo:
    """A window's prediction and its neighbours' on the frames they share, to blend.

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
                                        device=device)
                        for k in (self.me, *self.nbrs)}  # (n_k,) over window k's frames
        # One path for the whole gang: the kernel takes up to MAX_SOURCES windows, and
        # windows must step shared frames identically, so if any has more, all use the
        # reference (None: the kernel where Triton runs).
        most = max(len(neighbours(order.gang, k)) + 1 for k in range(len(order.gang)))
        self.use_triton = None if most <= MAX_SOURCES else False

    def _local(self, k: int) -> tuple[Window, Window]:
        """Frames shared with window k, in my coordinates and in k's."""
        w, o = self.window, self.gang[k]
        lo, hi = max(w.start, o.start), min(w.stop, o.stop)
        return Window(lo - w.start, hi - w.start), Window(lo - o.start, hi - o.start)

    def outgoing(self, pred: torch.Tensor) -> Halos:
        """My prediction on the frames I share with each neighbour."""
        return {k: pred[:, :, self._local(k)[0].start:self._local(k)[0].stop] for k in self.nbrs}

    def sources(self, pred: torch.Tensor, got: Halos) -> list[Source]:
        """Mine (1, C, F, h, w) and each neighbour's (1, C, n, h, w) on our shared frames,
        float32, with window k's blend weights on them, in ascending window order."""
        out = []
        for k in sorted((self.me, *self.nbrs)):
            if k == self.me:
                mine, theirs, value = Window(0, pred.shape[2]), Window(0, pred.shape[2]), pred
            else:
                mine, theirs = self._local(k)
                value = got[k]
            out.append(Source(value.to(pred.device, torch.float32), mine.start,
                              self.weights[k][theirs.start:theirs.stop]))
        return out
