"""Solver state and the phase handoff: typed, serialisable to bytes without pickle.

A multistep solver (UniPC, Wan's default) keeps history between steps. Handing over only
the latents and the step index changes the result (about 0.1 max difference on the tiny
model); handing over the whole state reproduces one uninterrupted run. Euler keeps none.

    Handoff = latents (1, C, F, H, W) fp32
            + SolverState: step_index, begin_index, and for UniPC
              model_outputs[order], timestep_list[order], last_sample,
              lower_order_nums, this_order

Wire format: safetensors (tensors by name) with a JSON header in its metadata. The wire
is exact float32 unless the sender opts in to a lossy codec for a slow link
(`to_bytes(codec="bf16" | "fp8")`, reelfarm_kernels.handoff_codec, fp8 with a scale per
channel and latent frame); the header names it.
A serving pool opts in with PoolConfig.handoff_codec: it passes its handoffs between
phases on as WireHandoff bytes (to_wire), and whoever reads one decodes it (received).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

FORMAT = "reelfarm.handoff/v1"
CODECS = ("exact", "bf16", "fp8")  # wire formats; lossy ones: reelfarm_kernels.handoff_codec


@dataclass
class SolverState:
    """The parts of a diffusers flow scheduler that carry over between steps."""

    kind: str  # "unipc" | "euler"
    step_index: int
    begin_index: int | None
    model_outputs: list[torch.Tensor | None] = field(default_factory=list)
    timestep_list: list[float | None] = field(default_factory=list)
    last_sample: torch.Tensor | None = None
    lower_order_nums: int = 0
    this_order: int | None = None


@dataclass
class Handoff:
    """A segment between phases: its latents and the solver state after step_index."""

    latents: torch.Tensor
    state: SolverState
    # After the last phase: latents the decoder runs in front (Condition.lead, S2V).
    lead: torch.Tensor | None = None
    # What the phase's step cache skipped (farm.model.speed.CacheStats); None: exact.
    # A statistic for the render log: not serialised.
    cache: Any = None

    def to_bytes(self, codec: str = "exact") -> bytes:
        """Serialise; `codec` "bf16" or "fp8" trades exactness for 2x / 4x fewer bytes
        (encoded where the tensors live, so a GPU copies only the packed bytes to the host)."""
        tensors = {"latents": self.latents.detach()}
        for i, t in enumerate(self.state.model_outputs):
            if t is not None:
                tensors[f"model_outputs.{i}"] = t.detach()
        if self.state.last_sample is not None:
            tensors["last_sample"] = self.state.last_sample.detach()
        if self.lead is not None:
            tensors["lead"] = self.lead.detach()
        shapes = {name: list(t.shape) for name, t in tensors.items()}
        if codec != "exact":
            from reelfarm_kernels.handoff_codec import encode_tensors

            tensors = encode_tensors({name: _frames_as_channels(t)
                                      for name, t in tensors.items()}, codec)
        tensors = {name: t.to("cpu").contiguous() for name, t in tensors.items()}
        header = {
            "format": FORMAT, "kind": self.state.kind, "step_index": self.state.step_index,
            "begin_index": self.state.begin_index,
            "num_model_outputs": len(self.state.model_outputs),
            "timestep_list": self.state.timestep_list,
            "lower_order_nums": self.state.lower_order_nums,
            "this_order": self.state.this_order, "codec": codec,
        }
        if codec != "exact":
            header["shapes"] = shapes
        return st_save(tensors, metadata={"header": json.dumps(header)})

    @classmethod
    def from_bytes(cls, data: bytes) -> Handoff:
        try:
            tensors = st_load(data)
            header = json.loads(_metadata(data)["header"])
        except Exception as exc:  # noqa: BLE001 - any parse failure means "not a handoff"
            raise ValueError(f"not a reelfarm handoff: {exc}") from None
        if header.get("format") != FORMAT:
            raise ValueError(f"not a reelfarm handoff (format {header.get('format')!r})")
        if header.get("codec", "exact") != "exact":
            from reelfarm_kernels.handoff_codec import decode_tensors

            tensors = decode_tensors(tensors, header["codec"])
            tensors = {name: (t.reshape(header["shapes"][name]) if name in header.get("shapes", {})
                              else t)
                       for name, t in tensors.items()}
        state = SolverState(
            kind=header["kind"], step_index=header["step_index"], begin_index=header["begin_index"],
            model_outputs=[tensors.get(f"model_outputs.{i}")
                           for i in range(header["num_model_outputs"])],
            timestep_list=header["timestep_list"], last_sample=tensors.get("last_sample"),
            lower_order_nums=header["lower_order_nums"], this_order=header["this_order"])
        return cls(tensors["latents"], state, tensors.get("lead"))

    @property
    def nbytes(self) -> int:
        ts = [self.latents, self.lead, self.state.last_sample, *self.state.model_outputs]
        return sum(t.numel() * t.element_size() for t in ts if t is not None)


def _frames_as_channels(t: torch.Tensor) -> torch.Tensor:
    """(B, C, F, h, w) -> (B, C * F, h, w): the codec scales fp8 per channel (dim 1), so
    this gives each latent frame of each channel its own scale. Overlapping windows hold
    identical values on the frames they share, hence get identical scales there and stay
    identical across a lossy handoff (one scale per channel of a whole window would not)."""
    return t.flatten(1, 2) if t.dim() == 5 else t


def _metadata(data: bytes) -> dict[str, str]:
    # safetensors layout: 8-byte little-endian header length, then the JSON header.
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]).get("__metadata__", {})


def export_state(scheduler) -> SolverState:
    """Read the carry-over state out of a diffusers UniPC or FlowMatchEuler scheduler."""
    if hasattr(scheduler, "model_outputs"):
        return SolverState(
            kind="unipc", step_index=scheduler.step_index, begin_index=scheduler.begin_index,
            model_outputs=[None if t is None else t.clone() for t in scheduler.model_outputs],
            timestep_list=[None if t is None else float(t) for t in scheduler.timestep_list],
            last_sample=None if scheduler.last_sample is None else scheduler.last_sample.clone(),
            lower_order_nums=scheduler.lower_order_nums,
            this_order=getattr(scheduler, "this_order", None))
    return SolverState(kind="euler", step_index=scheduler.step_index,
                       begin_index=scheduler.begin_index)


def import_state(scheduler, state: SolverState, device: torch.device | str) -> None:
    """Restore `state` into a scheduler on which set_timesteps() was just called."""
    is_unipc = hasattr(scheduler, "model_outputs")
    if is_unipc != (state.kind == "unipc"):
        raise ValueError(f"handoff from a {state.kind} solver cannot resume a "
                         f"{'unipc' if is_unipc else 'euler'} solver")
    scheduler._step_index = state.step_index
    scheduler._begin_index = state.begin_index
    if not is_unipc:
        return
    ts_dtype = scheduler.timesteps.dtype
    scheduler.model_outputs = [None if t is None else t.to(device) for t in state.model_outputs]
    scheduler.timestep_list = [None if t is None else torch.tensor(t, dtype=ts_dtype, device=device)
                               for t in state.timestep_list]
    scheduler.last_sample = None if state.last_sample is None else state.last_sample.to(device)
    scheduler.lower_order_nums = state.lower_order_nums
    if state.this_order is not None:
        scheduler.this_order = state.this_order


@dataclass(frozen=True)
class WireHandoff:
    """A handoff in a lossy wire format: Handoff.to_bytes(codec) of a bf16 / fp8 pool."""

    data: bytes

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def to_bytes(self) -> bytes:
        """The same bytes: a checkpoint of it resumes with the values its reader got."""
        return self.data


def to_wire(handoff: Handoff, codec: str, final: bool) -> Handoff | WireHandoff:
    """What a phase passes on. Between phases: the handoff in `codec` (exact: the Handoff
    itself, unencoded). After the last phase (`final`) always the Handoff: those latents
    go straight to the VAE, and the codec's error bounds are measured on the handoff
    between experts, which the remaining steps denoise (tests/kernels/test_codec_tiny_model.py)."""
    if codec not in CODECS:
        raise ValueError(f"handoff codec must be one of {CODECS}, got {codec!r}")
    if codec == "exact" or final:
        return handoff
    return WireHandoff(handoff.to_bytes(codec))


def received(value):
    """A phase input as the runner wants it: WireHandoff decoded, anything else as is."""
    return Handoff.from_bytes(value.data) if isinstance(value, WireHandoff) else value


class HandoffCodec:
    """The executor's StateCodec for phase outputs: Handoff (or WireHandoff, its bytes
    as they are) <-> safetensors bytes; `wire` / `received` pass handoffs on in `codec`."""

    def __init__(self, codec: str = "exact"):
        if codec not in CODECS:
            raise ValueError(f"handoff codec must be one of {CODECS}, got {codec!r}")
        self.codec = codec

    def wire(self, state: Handoff, final: bool) -> Handoff | WireHandoff:
        return to_wire(state, self.codec, final)

    @staticmethod
    def received(value):
        return received(value)

    @staticmethod
    def dumps(state: Handoff | WireHandoff) -> bytes:
        return state.to_bytes()

    @staticmethod
    def loads(data: bytes) -> Handoff:
        return Handoff.from_bytes(data)
