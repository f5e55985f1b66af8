"""TorchWorker: runs prompt, denoise and decode orders with the weights it holds.

One worker per device. It loads lazily and only what it is asked to run, so a
high-noise-pool worker never loads the low-noise expert, the VAE or the text encoder.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Generator
from typing import Any

import torch

from farm.engine.exchange import Exchange
from farm.engine.executor import Emit
from farm.engine.orders import (
    DecodeOrder,
    DenoiseOrder,
    GangRank,
    ImageOrder,
    ModelRef,
    PromptOrder,
)
from farm.media.images import load_image
from farm.model.adapter_cache import DEFAULT_ADAPTERS, AdapterCache, AdapterCacheConfig
from farm.model.adapters import scoped
from farm.model.bands import band_frames
from farm.model.condition import Condition, image_tensor, make_condition
from farm.model.decode import StreamingDecoder, to_uint8
from farm.model.gang import Gang, check_gang
from farm.model.inputs import Carried, InputEncoder, SceneConditioning
from farm.model.loader import ModelLoader, ModelSource
from farm.model.noise import initial_noise
from farm.model.phase import Halos, drive, phase_steps
from farm.model.shard import sharded_steps
from farm.model.solver import Handoff
from farm.model.speed import SHARD_SAFE
from farm.model.text import PromptEmbeds, encode_prompts
from farm.spec.profiles import profile_for


class TorchWorker:
    def __init__(self, source: ModelSource, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, vae_dtype: torch.dtype = torch.float32,
                 offload: str = "none", adapters: AdapterCacheConfig = DEFAULT_ADAPTERS):
        """`offload`: where its experts wait between uses (PoolConfig.offload); `adapters`:
        the LoRA adapters it keeps on its device (farm.model.adapter_cache)."""
        self.loader = ModelLoader(source, device, dtype, vae_dtype, offload)
        self.adapters = AdapterCache(adapters, self.loader.device, dtype)
        self.profile = profile_for(source.family)
        self.gangs = OpenGangs()

    def _check(self, model: ModelRef) -> None:
        if model.family != self.loader.source.family:
            raise ValueError(f"worker holds a {self.loader.source.family} model, the order "
                             f"needs {model.family} ({model.model})")

    def encode_prompt(self, order: PromptOrder) -> PromptEmbeds:
        self._check(order.model)
        tokenizer, encoder = self.loader.text()
        return encode_prompts(tokenizer, encoder, order.prompt, order.negative_prompt,
                              order.model.text_len, order.needs_negative)

    def encode_image(self, order: ImageOrder) -> Condition | SceneConditioning:
        """The scene's inputs (farm.model.inputs), or (older orders) its first frame."""
        self._check(order.model)
        if order.clip is not None:
            return InputEncoder(self.loader, self.profile).scene(order.model, order.clip)
        frame = load_image(order.path, order.model.width, order.model.height)
        return make_condition(self.loader.vae(), image_tensor(frame), order.num_frames,
                              self.profile.expand_timesteps)

    def denoise_steps(self, order: DenoiseOrder, prompt: PromptEmbeds, state: Handoff | None,
                      condition: Condition | None) -> Generator[tuple[int, Halos], Halos, Handoff]:
        """The phase as a generator that yields its halos each step (see model.phase).

        An order with a gang rank joins its gang's process groups when first stepped, so
        it must run in a thread (or process) of its own, concurrently with its peers."""
        self._check(order.model)
        if isinstance(condition, SceneConditioning):  # the scene's first clip
            condition = condition.first
        latents = None
        if state is None:
            latents = clip_noise(order, self.profile, condition.prefix if condition else 0)
        model = self.loader.expert(order.expert)
        rank = order.gang_rank
        if rank is not None:
            check_gang(model, rank, order.guidance)
            if rank.sp > 1 and order.speed is not None and order.speed.cache not in SHARD_SAFE:
                raise ValueError(f"{order.segment_id}: the {order.speed.cache} cache decides "
                                 "from whole activations; a sequence-parallel gang sees shards "
                                 f"(caches that can: {', '.join(SHARD_SAFE)})")
        # exactly the scene's adapters while this phase computes (none: the bare expert)
        active = self.adapters.activate(model, order.adapters)
        ganged = rank is not None and rank.size > 1
        # offload "shard" in a gang: this rank's shards of the expert (farm.model.shard);
        # on one GPU the expert's hooks move it in whole, as "model" offload
        shard = ganged and self.loader.offload == "shard"

        def steps(gang: Gang | None):
            run = phase_steps(model, self.loader.scheduler(order.model.solver, order.model.shift),
                              order, prompt, latents, state,
                              expand_timesteps=self.profile.expand_timesteps,
                              condition=condition, gang=gang)
            if shard:
                run = sharded_steps(run, self.loader.host(order.expert), gang, order.expert)
            return scoped(run, active)
        if not ganged:
            if self.loader.offload == "shard":
                # the whole expert comes in: its open gangs' shards make room (the
                # scheduler forgets those gangs too, farm.sched.scheduler._note_phase)
                self.gangs.close_idle()
            return steps(None)
        return _ganged(steps, rank, self.loader.device, self.gangs, shard)

    def denoise(self, order: DenoiseOrder, prompt: PromptEmbeds, state: Handoff | None,
                condition: Condition | None, exchange: Exchange) -> Handoff:
        return drive(self.denoise_steps(order, prompt, state, condition), order.member, exchange)

    def decode(self, order: DecodeOrder, latents: list[Handoff], emit: Emit,
               scene: SceneConditioning | None = None) -> Any | None:
        """Stream the unit's frames out; in a chain, return the next clip's conditioning
        (built from this clip's last frames and the scene's features)."""
        self._check(order.model)
        z = torch.cat([h.latents[:, :, start:stop]
                       for h, (_, start, stop) in zip(latents, order.slices, strict=True)],
                      dim=2)  # (1, C, L, h, w)
        behind = len(latents) == 1 and latents[0].lead is not None
        if behind:  # S2V: the clip behind its reference / motion latents
            z = torch.cat([latents[0].lead.to(z), z], dim=2)
        lead = order.band_rank is None or order.band_rank.rank == 0  # streams the frames
        produced, last = 0, None
        keep = order.next_clip.carry if order.next_clip is not None else 0
        # the last `keep` decoded frames (1, 3, 1, H, W); behind a lead, only delivered
        # ones (S2V's history, as the official loop's: fewer after a short first clip)
        tail: list[torch.Tensor] = []
        for chunk in self._decoded(order, z):
            for k, frame in enumerate(to_uint8(chunk)):
                delivered = produced >= order.drop_frames
                if delivered and lead:
                    emit(order.scene_id, order.frame_start + produced - order.drop_frames, frame)
                produced, last = produced + 1, frame
                if keep and (delivered or not behind):
                    tail = (tail + [chunk[:, :, k:k + 1].float().cpu()])[-keep:]
        if not order.condition_frames or not lead:
            return None
        if order.next_clip is not None:
            frames = torch.cat(tail, dim=2)
            carried = Carried(frames, list(to_uint8(frames)))
            return InputEncoder(self.loader, self.profile).clip(
                order.model, scene.features if scene is not None else {}, order.next_clip, carried)
        # Chain: the next segment starts from this segment's last frame.
        return make_condition(self.loader.vae(), image_tensor(last), order.condition_frames,
                              self.profile.expand_timesteps)


    def _decoded(self, order: DecodeOrder, z: torch.Tensor):
        """Decoded chunks of z: one pass, or the order's bands (this rank's, gathered)."""
        vae = self.loader.vae()
        if order.bands == 1:
            return StreamingDecoder(vae).decode(z)
        rank = order.band_rank
        if rank is None or rank.size == 1:
            return band_frames(vae, z, order.bands)

        def bands(gang: Gang):
            def gather(mine: torch.Tensor, sizes: list[int]) -> torch.Tensor:
                return gang.seq.gather(mine, dim=-1, total=sum(sizes), sizes=sizes)
            return band_frames(vae, z, order.bands, rank.rank, rank.size, gather)
        return _ganged(bands, rank, self.loader.device)


def clip_noise(order: DenoiseOrder, profile, prefix: int) -> torch.Tensor:
    """Initial noise of a segment (keyed per latent frame of the scene), with `prefix`
    latent frames in front for reference frames (keyed per segment)."""
    h, w = order.model.height // profile.vae_spatial, order.model.width // profile.vae_spatial
    if profile.motion_frames:  # S2V: clip r draws randn(16, L, h, w) seeded seed + r, as
        clip = int(order.segment_id.rsplit("/", 1)[1])  # the official loop (on the CPU)
        g = torch.Generator("cpu").manual_seed(order.seed + clip)
        return torch.randn((1, profile.latent_channels, order.window.size, h, w), generator=g)
    noise = initial_noise(order.seed, order.scene_id, order.window.size, profile.latent_channels,
                          h, w, first_frame=order.window.start)
    if not prefix:
        return noise
    front = initial_noise(order.seed, f"{order.scene_id}/prefix@{order.window.start}", prefix,
                          profile.latent_channels, h, w)
    return torch.cat([front, noise], dim=2)  # (1, C, prefix + F, h, w)


class OpenGangs:
    """The process groups of this worker's last phase gangs, kept open after the phase
    so that the unit's next phase on the same ranks (PhaseTask.gang_key) skips forming
    them (an NCCL communicator takes about a second). The scheduler reuses only the last
    gang started on a worker, so keeping the two started last is enough (a worker with
    two slots may finish them out of order); older ones are closed (under offload "shard"
    that frees their experts' shards)."""

    KEEP = 2

    def __init__(self):
        self._open: dict[tuple[str, int], Gang] = {}  # insertion order = start order
        self._lock = threading.Lock()

    def join(self, rank: GangRank, device: torch.device, shard: bool = False) -> Gang:
        """The open gang of this name and rank (taken out while it runs), or a new one
        (`shard`: with its world group, for offload "shard"; its shards stay with it)."""
        with self._lock:
            gang = self._open.pop((rank.prefix, rank.rank), None)
        return gang if gang is not None else Gang(rank, device, shard=shard)

    def get(self, prefix: str, rank: int) -> Gang | None:
        """The open gang of this name and rank, left open (None: none is)."""
        with self._lock:
            return self._open.get((prefix, rank))

    def close_idle(self) -> None:
        """Close every open gang not running a phase (those are taken out while they run)."""
        with self._lock:
            closing, self._open = list(self._open.values()), {}
        for g in closing:
            g.close()

    def keep(self, gang: Gang) -> None:
        with self._lock:
            self._open[(gang.spec.prefix, gang.spec.rank)] = gang
            old = list(self._open)[:-self.KEEP]
            closing = [self._open.pop(k) for k in old]
        for g in closing:
            g.close()


def _ganged(steps, rank: GangRank, device: torch.device, keep: OpenGangs | None = None,
            shard: bool = False):
    """Join the gang (or take it open from the last phase), run the phase as one of its
    ranks, keep it open in `keep` (or leave it); abort it on any failure."""
    gang = keep.join(rank, device, shard) if keep is not None else Gang(rank, device)
    try:
        result = yield from steps(gang)
    except BaseException as exc:
        # Stamped before the abort, which is what fails the peers: the runtime blames the
        # rank whose failure came first, not their echoes ("connection closed by peer").
        with contextlib.suppress(AttributeError):
            exc.gang_failed_at = time.monotonic()  # type: ignore[attr-defined]
        gang.abort()
        raise
    if keep is not None:
        keep.keep(gang)
    else:
        gang.close()
    return result
