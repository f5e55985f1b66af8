"""Planning a resolved film into scenes, segments, units and phases (pure).

    Film ── Scene ── Unit ── Segment        Phase (per unit, same for every unit)
                      │        window of       expert 0 steps [0, k)
                      │        latent frames   expert 1 steps [k, N)
                      └ single: 1 segment; windows: a gang of segments that step
                        together; chain: 1 segment, after the previous unit's decode
                        (S2V: clips that do not overlap, each after the previous
                        one's decode: its motion history).

The scheduler places units (all segments of a unit at once) and runs their phases in
order; the decoder turns each scene's final latents into frames, in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from farm.plan.adapters import DEFAULT_LORA_BYTES, AdapterSet
from farm.plan.segments import (
    Window,
    neighbours,
    owner_slices,
    plan_chain,
    plan_windows,
    shared_latents,
)
from farm.plan.timesteps import Phase, phases, timesteps
from farm.spec.film import Film, Scene, phase_adapters
from farm.spec.frames import pixel_frames


@dataclass(frozen=True, slots=True)
class Segment:
    """One window of a scene's latent frames: what one denoising call works on."""

    # "<scene id>/<index>", unique within the film.
    id: str
    scene_id: str
    index: int
    # Latent frames [start, stop) of the scene.
    window: Window
    # Ids of segments of the same unit sharing frames with this one (windows mode).
    neighbour_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unit:
    """What the scheduler places: one segment, or a gang of windows of one scene."""

    # "<scene id>/u<index>", unique within the film.
    id: str
    scene_id: str
    index: int
    segments: tuple[Segment, ...]
    # Chain mode: the unit whose decoded last frame(s) condition this one; a scene's
    # first unit: the last unit of the scene it starts from (farm.plan.continuity).
    after: str | None
    # Pixel frames of the scene this unit's decode produces: [frame_start, frame_stop).
    frame_start: int
    frame_stop: int
    # Latent frames [start, stop) of each segment that the decoder reads, in order.
    decode_slices: tuple[tuple[str, Window], ...]
    # Decoded frames at the start of this unit to drop (chain: the shared frame).
    drop_frames: int

    @property
    def is_gang(self) -> bool:
        return len(self.segments) > 1


@dataclass(frozen=True, slots=True)
class ScenePlan:
    scene: Scene
    units: tuple[Unit, ...]
    # Index of the scene's first frame within the film.
    film_frame_start: int
    # Whether the decoder keeps one causal cache for the whole scene (single, windows)
    # or restarts it for every unit (chain: every unit is a separate clip).
    continuous_decode: bool


@dataclass(frozen=True, slots=True)
class FilmPlan:
    film: Film
    # Timesteps of the solver, highest first; phases split them between experts.
    timesteps: tuple[float, ...]
    phases: tuple[Phase, ...]
    scenes: tuple[ScenePlan, ...]
    # Bytes of every LoRA file the film's phases load (location -> bytes; farm.plan.adapters).
    adapter_bytes: tuple[tuple[str, int], ...] = ()

    def adapters(self, scene_id: str, phase_index: int) -> AdapterSet:
        """The adapter set a phase of the scene runs with: (location, bytes) of each
        adapter active on the phase's expert, in the order the phase applies them."""
        sizes = dict(self.adapter_bytes)
        return tuple((loc, sizes[loc]) for loc, _ in self.adapter_key(scene_id, phase_index))

    def adapter_key(self, scene_id: str, phase_index: int) -> tuple[tuple[str, float], ...]:
        """What the phase's expert must have active: (location, weight) of each adapter
        (two phases with different keys cannot share one expert's step; () for none)."""
        scene = self.scene_plan(scene_id).scene
        return phase_adapters(self.film, scene, self.phases[phase_index].expert)

    @property
    def units(self) -> tuple[Unit, ...]:
        return tuple(u for s in self.scenes for u in s.units)

    def scene_plan(self, scene_id: str) -> ScenePlan:
        for s in self.scenes:
            if s.scene.id == scene_id:
                return s
        raise KeyError(scene_id)

    def unit(self, unit_id: str) -> Unit:
        scene_id = unit_id.split("/", 1)[0]
        for u in self.scene_plan(scene_id).units:
            if u.id == unit_id:
                return u
        raise KeyError(unit_id)


def plan_film(film: Film, *, max_phase_steps: int | None = None,
              adapter_bytes: Mapping[str, int] | None = None) -> FilmPlan:
    """`max_phase_steps`: split each expert's steps into phases of at most that many
    (exact handoffs between them; more decision points for the scheduler's gangs).
    `adapter_bytes`: the size of LoRA files by location, where known (others count as
    DEFAULT_LORA_BYTES, farm.plan.adapters)."""
    steps = timesteps(film.solver, film.num_steps, film.shift)
    scenes, offset = [], 0
    for scene in film.scenes:
        scenes.append(plan_scene(scene, offset))
        offset += scene.num_frames
    return FilmPlan(film=film, timesteps=steps,
                    phases=phases(steps, film.profile.boundaries, max_phase_steps),
                    scenes=tuple(_link_start_from(scenes)),
                    adapter_bytes=_adapter_bytes(film, adapter_bytes or {}))


def _adapter_bytes(film: Film, known: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    extra = film.draft.adapters if film.draft is not None else ()
    found = dict.fromkeys(a.location for s in film.scenes for a in (*s.adapters, *extra))
    return tuple((loc, known.get(loc, DEFAULT_LORA_BYTES)) for loc in found)


def _link_start_from(scenes: list[ScenePlan]) -> list[ScenePlan]:
    """Each scene with `start_from`: its first unit comes after the source's last unit
    (the edge of a cut; farm.plan.continuity reads the edges)."""
    last = {sp.scene.id: sp.units[-1].id for sp in scenes}
    out = []
    for sp in scenes:
        source = sp.scene.start_from
        if source is not None:
            first = replace(sp.units[0], after=last[source])
            if sp.scene.history:  # S2V: decoded behind the motion history, not the
                # reference latent: drop the history and the lead-in (same frames out)
                first = replace(first, drop_frames=sp.scene.carry + FIRST_CLIP_DROP - 1)
            sp = replace(sp, units=(first, *sp.units[1:]))
        out.append(sp)
    return out


def plan_scene(scene: Scene, film_frame_start: int = 0) -> ScenePlan:
    n = scene.num_latent_frames
    if scene.history:  # S2V, one clip or a chain: decoded behind reference / motion latents
        return ScenePlan(scene, _history_units(scene), film_frame_start, continuous_decode=False)
    if scene.continuity == "chain":
        units = _chain_units(scene, plan_chain(n, scene.window, shared_latents(scene.carry)))
        return ScenePlan(scene, units, film_frame_start, continuous_decode=False)
    if scene.continuity == "windows":
        windows = plan_windows(n, scene.window, scene.overlap)
    else:
        windows = (Window(0, n),)
    segs = tuple(
        Segment(f"{scene.id}/{k}", scene.id, k, w,
                tuple(f"{scene.id}/{j}" for j in neighbours(windows, k)))
        for k, w in enumerate(windows))
    slices = tuple((s.id, sl) for s, sl in zip(segs, owner_slices(windows), strict=True))
    unit = Unit(f"{scene.id}/u0", scene.id, 0, segs, None, 0, scene.num_frames, slices, 0)
    return ScenePlan(scene, (unit,), film_frame_start, continuous_decode=True)


def _chain_units(scene: Scene, windows: tuple[Window, ...]) -> tuple[Unit, ...]:
    units, frame = [], 0
    for k, w in enumerate(windows):
        seg = Segment(f"{scene.id}/{k}", scene.id, k, w, ())
        drop = scene.carry if k > 0 else 0
        stop = frame + pixel_frames(w.size) - drop
        units.append(Unit(f"{scene.id}/u{k}", scene.id, k, (seg,),
                          f"{scene.id}/u{k - 1}" if k > 0 else None, frame, stop,
                          ((seg.id, w),), drop))
        frame = stop
    return tuple(units)


# S2V decodes each clip behind its own prefix latents: the first behind the reference
# latent (1 frame, then the official 3 dropped frames), later ones behind the 19 motion
# latents (the 73 frames of history).
FIRST_CLIP_DROP = 4


def _history_units(scene: Scene) -> tuple[Unit, ...]:
    """S2V chain: clips of `window` latents that do not overlap (the last one shorter);
    clip k > 0 is conditioned on the `carry` frames before it, decoded behind them.

        latents   [0 ........ 20)[20 ....... 40)[40 .. 47)
        frames    [0 ...... 77)[77 ...... 157)[157 . 185)     first clip 4L - 3, then 4L
    """
    units, frame, n = [], 0, scene.num_latent_frames
    for k, start in enumerate(range(0, n, scene.window)):
        w = Window(start, min(n, start + scene.window))
        seg = Segment(f"{scene.id}/{k}", scene.id, k, w, ())
        stop = frame + 4 * w.size - (3 if k == 0 else 0)
        units.append(Unit(f"{scene.id}/u{k}", scene.id, k, (seg,),
                          f"{scene.id}/u{k - 1}" if k > 0 else None, frame, stop,
                          ((seg.id, w),), FIRST_CLIP_DROP if k == 0 else scene.carry))
        frame = stop
    return tuple(units)
