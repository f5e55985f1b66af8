"""Work orders: what a worker needs to run a task, built from the film plan (pure).

Scheduler tasks name ids and keys; orders add the film's settings (size, solver, seed,
guidance, windows) so a worker never needs the plan. Orders are small, frozen and
picklable: they cross process boundaries as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from farm.plan.continuity import successor
from farm.plan.film import FilmPlan
from farm.plan.segments import Window
from farm.sched.output import DecodeTask, ImageTask, PhaseTask, PrepareTask
from farm.spec.adapters import LORA_FILE
from farm.spec.continuity import takes_first_frame
from farm.spec.film import phase_adapters
from farm.spec.frames import pixel_frames
from farm.spec.inputs import SceneInputs
from farm.spec.speed import CacheSetting


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Which weights and settings: identical for every order of one film."""

    # "tiny", "tiny-<family>" or a local diffusers-format folder.
    model: str
    family: str
    experts: tuple[str, ...]
    width: int
    height: int
    num_steps: int
    shift: float
    solver: str
    text_len: int
    # Rendered as a few-step draft (farm.spec.adapters): num_steps is the draft's.
    draft: bool = False


@dataclass(frozen=True, slots=True)
class PromptOrder:
    film_id: str
    scene_id: str
    model: ModelRef
    prompt: str
    negative_prompt: str
    # Guidance > 1 needs the negative prompt's embeddings too.
    needs_negative: bool


@dataclass(frozen=True, slots=True)
class ClipInputs:
    """What a VAE worker needs to build one clip's conditioning from the scene's media."""

    inputs: SceneInputs
    fps: int
    # Pixel frames [frame_start, frame_start + num_frames) of the scene.
    frame_start: int
    num_frames: int
    # The scene's first clip (its `image` applies; no previous frames) and last clip
    # (its `last_image` applies).
    first: bool
    last: bool
    # Frames a clip takes from the end of the previous one (the scene's carry).
    carry: int


@dataclass(frozen=True, slots=True)
class ImageOrder:
    """Encode a scene's inputs: features every clip reuses (references, the character)
    and the conditioning of its first clip."""

    film_id: str
    scene_id: str
    model: ModelRef
    # Absolute path of the first-frame image ("" if none; checked at submission).
    path: str
    num_frames: int
    clip: ClipInputs | None = None


@dataclass(frozen=True, slots=True)
class GangRank:
    """Where a denoise order runs inside its segment's gang, and where the gang meets.

    A segment's phase may run on `cfg x sp` workers: CFG parallel (cfg = 2: the
    conditional and the unconditional forward on two workers) times Ulysses sequence
    parallel (sp workers split the tokens). Rank = cfg_rank * sp + sp_rank.
    """

    cfg: int
    sp: int
    rank: int
    # Rendezvous: a TCP key-value store ("host:port") and this gang's key prefix in it.
    store: str
    prefix: str
    # Seconds to wait for the other ranks (rendezvous and every collective).
    timeout_s: float = 300.0

    @property
    def size(self) -> int:
        return self.cfg * self.sp

    @property
    def cfg_rank(self) -> int:
        return self.rank // self.sp

    @property
    def sp_rank(self) -> int:
        return self.rank % self.sp


@dataclass(frozen=True, slots=True)
class DenoiseOrder:
    """One member (segment) of a phase."""

    film_id: str
    task_id: str
    segment_id: str
    scene_id: str
    model: ModelRef
    seed: int
    expert: str
    guidance: float
    start_step: int
    stop_step: int
    # This segment's latent frames [start, stop) of the scene (noise is keyed by them).
    window: Window
    # The gang: every member's window (same order as the task's members) and my index.
    gang: tuple[Window, ...]
    member: int
    # Whether a conditioning input (chain: previous segment's last frame) is given.
    conditioned: bool
    # None: this order runs on one worker (the default); else its rank in the gang.
    gang_rank: GangRank | None = None
    # LoRA adapters active on this expert in the phase: (location, weight), in order.
    adapters: tuple[tuple[str, float], ...] = ()
    # The step cache this expert runs with in the phase (farm.spec.speed); None: exact.
    speed: CacheSetting | None = None


@dataclass(frozen=True, slots=True)
class DecodeOrder:
    film_id: str
    task_id: str
    scene_id: str
    model: ModelRef
    # (segment id, latent frames [start, stop) of that segment's latents), in order.
    slices: tuple[tuple[str, int, int], ...]
    frame_start: int
    drop_frames: int
    # Chain: pixel frames of the next segment (its conditioning), 0 for none.
    condition_frames: int
    # Chain: the next clip, whose conditioning this decode builds from its last frames.
    next_clip: ClipInputs | None = None
    # Band-parallel decode (farm.model.bands): the frame's vertical bands, and where this
    # order runs among the decode's ranks (cfg 1 x sp ranks; None: one rank, every band).
    bands: int = 1
    band_rank: GangRank | None = None


def model_ref(plan: FilmPlan) -> ModelRef:
    film = plan.film
    return ModelRef(film.model, film.profile.family, film.profile.experts, film.width,
                    film.height, film.num_steps, film.shift, film.solver, film.profile.text_len,
                    film.draft is not None)


def prompt_order(plan: FilmPlan, task: PrepareTask) -> PromptOrder:
    scene = plan.film.scene(task.scene_id)
    return PromptOrder(task.film_id, task.scene_id, model_ref(plan), scene.prompt,
                       scene.negative_prompt, needs_negative=any(g > 1.0 for g in scene.guidance))


def clip_inputs(plan: FilmPlan, scene_id: str, unit_index: int) -> ClipInputs:
    sp = plan.scene_plan(scene_id)
    w = sp.units[unit_index].segments[0].window
    return ClipInputs(sp.scene.inputs, plan.film.fps, 4 * w.start, pixel_frames(w.size),
                      unit_index == 0, unit_index == len(sp.units) - 1, sp.scene.carry)


def image_order(plan: FilmPlan, task: ImageTask) -> ImageOrder:
    scene_plan = plan.scene_plan(task.scene_id)
    first = scene_plan.units[0].segments[0].window
    return ImageOrder(task.film_id, task.scene_id, model_ref(plan), scene_plan.scene.image or "",
                      pixel_frames(first.size), clip_inputs(plan, task.scene_id, 0))


def denoise_orders(plan: FilmPlan, task: PhaseTask) -> tuple[DenoiseOrder, ...]:
    film = plan.film
    scene = film.scene(task.scene_id)
    unit = plan.unit(task.unit_id)
    gang = tuple(seg.window for seg in unit.segments)
    ref = model_ref(plan)
    return tuple(
        DenoiseOrder(task.film_id, task.task_id, m.segment_id, scene.id, ref, scene.seed,
                     film.profile.experts[task.expert], scene.guidance[task.expert],
                     task.start_step, task.stop_step, seg.window, gang, i,
                     task.condition_key is not None,
                     adapters=phase_adapters(film, scene, task.expert),
                     speed=scene.speed[task.expert] if scene.speed else None)
        for i, (m, seg) in enumerate(zip(task.members, unit.segments, strict=True)))


def decode_order(plan: FilmPlan, task: DecodeTask) -> DecodeOrder:
    nxt = None
    if task.condition_frames:  # the unit after this one: its chain's next clip, or a cut
        after = successor(plan, task.unit_id)
        assert after is not None, f"{task.unit_id} conditions no unit"
        nxt = clip_inputs(plan, after.scene_id, after.index)
        # start_from (farm.spec.continuity): a first-frame family takes one frame, exactly
        # as `image:`; a chain-continuation family (Animate, S2V) its chain's carry
        if after.scene_id != task.scene_id and takes_first_frame(plan.film.profile):
            nxt = replace(nxt, carry=1)
    return DecodeOrder(task.film_id, task.task_id, task.scene_id, model_ref(plan),
                       tuple((s.segment_id, s.latent_start, s.latent_stop) for s in task.slices),
                       task.frame_start, task.drop_frames, task.condition_frames, nxt, task.bands)


def adapter_note(order: DenoiseOrder) -> str:
    """The render-log words of a phase's draft and LoRA adapters ("" for neither)."""
    words = [f"draft: {order.model.num_steps} steps, guidance {order.guidance:g}"
             if order.model.draft else ""]
    if order.adapters:
        names = (f"{_adapter_word(loc)}@{w:g}" for loc, w in order.adapters)
        words.append(f"LoRA {', '.join(names)}")
    return "; ".join(w for w in words if w)


def _adapter_word(location: str) -> str:
    """A file's name; a diffusers folder's name; an upload's media name (sha256 prefix)."""
    parts = location.rstrip("/").rsplit("/", 2)
    if len(parts) == 3 and parts[1] == "blobs":
        return f"media/{parts[2][:12]}"
    return parts[-2] if parts[-1] == LORA_FILE and len(parts) > 1 else parts[-1]
