"""Ready tasks and starting them: which tasks of a film can run now, what workers they
need, and handing one out (its ids and keys, and its record in the scheduler's Ledger).
What a report changes is in `farm.sched.reports`; which film goes first and where a task
runs are the scheduler's (farm.sched.scheduler, fairness, placement, gangs).

Keys of the data a task writes (the executor stores the data under them). `<n>` counts
the tries of that task, failed, lost or rolled back included, so a name is never reused
(an executor may free an old key after writing a new one):

    prompt      <film>:<scene>:prompt:a<n>
    image       <film>:<scene>:image:a<n>                first-frame conditioning
    phase out   <film>:<segment>:p<phase>:a<n>           latents + solver state
    condition   <film>:<unit>:cond:a<n>                  chain / start_from: next unit's first frame
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from farm.plan.segments import decode_bands
from farm.sched import edges
from farm.sched.adapters import Loads
from farm.sched.fairness import unit_tokens
from farm.sched.output import (
    DecodeSlice,
    DecodeTask,
    ImageTask,
    Layout,
    MemberTask,
    PhaseTask,
    PrepareTask,
    TaskKind,
)
from farm.sched.placement import Need
from farm.sched.state import (
    FilmRecord,
    GangMemo,
    Ledger,
    RunningTask,
    SceneState,
    Tries,
    UnitState,
)
from farm.spec.frames import pixel_frames


class Candidate(NamedTuple):
    """A ready task of a film, not started yet."""

    kind: TaskKind
    scene: SceneState
    unit: UnitState | None  # None for PREPARE and IMAGE


Task = PrepareTask | ImageTask | PhaseTask | DecodeTask


def candidates(film: FilmRecord) -> list[Candidate]:
    """Ready tasks of a film in playback order (earlier scenes and units first)."""
    out: list[Candidate] = []
    num_phases = len(film.plan.phases)
    for scene in film.scenes:
        needs_prompt = any(unit.phases_done < num_phases for unit in scene.units)
        if scene.prompt_key is None and scene.prompt_running is None and needs_prompt:
            out.append(Candidate(TaskKind.PREPARE, scene, None))
        if (scene.has_image and scene.image_key is None and scene.image_running is None
                and needs_prompt):  # chain decodes reuse the inputs until the last phase
            out.append(Candidate(TaskKind.IMAGE, scene, None))
        earlier_decoded = True
        for k, unit in enumerate(scene.units):
            if unit.running is None:
                if unit.phases_done < num_phases:
                    if scene.prompt_key is not None and _chain_ready(film, scene, k):
                        out.append(Candidate(TaskKind.PHASE, scene, unit))
                elif not unit.decoded and earlier_decoded and _decode_ready(film, unit):
                    out.append(Candidate(TaskKind.DECODE, scene, unit))
            earlier_decoded = earlier_decoded and unit.decoded
    return out


def _chain_ready(film: FilmRecord, scene: SceneState, k: int) -> bool:
    """A unit that comes after another (its chain's previous clip, or the last clip of the
    scene it starts from) waits for that unit's decode and the conditioning it made."""
    prev = edges.before(film, scene.units[k])
    if prev is None:
        return not scene.has_image or scene.image_key is not None
    return prev[1].decoded and prev[1].condition_key is not None


def _decode_ready(film: FilmRecord, unit: UnitState) -> bool:
    """A decode that builds the next unit's conditioning needs that unit's scene's inputs
    (its features: references, a control video)."""
    nxt = _conditions(film, unit)
    return nxt is None or not nxt[0].has_image or nxt[0].image_key is not None


def _conditions(film: FilmRecord, unit: UnitState) -> tuple[SceneState, UnitState] | None:
    """The unit whose conditioning `unit`'s decode builds: the one after it, while that
    one still has phases to run (a finished one needs none; if it renders again, the
    rollback recomputes this unit: farm.sched.reports.reset_unit)."""
    nxt = edges.after(film, unit)
    if nxt is None or nxt[1].phases_done >= len(film.plan.phases):
        return None
    return nxt


def requirements(film: FilmRecord, cand: Candidate) -> tuple[Need, int, tuple[str | None, ...]]:
    """(what a worker must serve, number of members, preferred worker per member)."""
    kind, _, unit = cand
    if kind is TaskKind.PREPARE:
        return Need("text", film.model), 1, ()
    if kind is TaskKind.IMAGE:
        return Need("vae", film.model), 1, ()
    assert unit is not None
    if kind is TaskKind.DECODE:  # the decoder reads every slice; start where the first lives
        return Need("vae", film.model), 1, (unit.location.get(unit.plan.decode_slices[0][0]),)
    return phase_need(film, unit), len(unit.plan.segments), tuple(
        unit.location.get(seg.id) for seg in unit.plan.segments)


def phase_need(film: FilmRecord, unit: UnitState) -> Need:
    """The expert (of the film's model) the unit's next phase runs on."""
    return Need(film.plan.film.profile.experts[film.plan.phases[unit.phases_done].expert],
                film.model)


def phase_guidance(film: FilmRecord, cand: Candidate) -> float:
    """Guidance of the unit's next phase (CFG parallel needs > 1)."""
    _, scene, unit = cand
    assert unit is not None
    return film.plan.film.scene(scene.scene_id).guidance[film.plan.phases[unit.phases_done].expert]


def phase_work(film: FilmRecord, unit: UnitState) -> float:
    """Fair-share charge of the unit's next phase: steps x tokens."""
    return film.plan.phases[unit.phases_done].num_steps * unit_tokens(film.plan, unit.plan)


def start(led: Ledger, film: FilmRecord, cand: Candidate, ids: tuple[str, ...],
          layout: Layout | None = None, gang: str = "", loads: tuple[Loads, ...] = ()) -> Task:
    """Start a candidate on `ids` (a phase: each member's ranks, members in order; `gang`
    names the gangs it reuses, "" for new ones; `loads`: the adapters each of its
    workers loads for it, farm.sched.adapters)."""
    kind, scene, unit = cand
    for wid in ids:
        led.workers[wid].busy += 1
    film.started = True
    if kind is TaskKind.PREPARE:
        n = _next_try(scene.slot(kind))
        tid = f"{film.film_id}/{scene.scene_id}/prepare/a{n}"
        key = f"{film.film_id}:{scene.scene_id}:prompt:a{n}"
        scene.prompt_running = tid
        led.running[tid] = RunningTask(kind=kind, film_id=film.film_id, scene_index=scene.index,
                                       worker_ids=ids, output_keys=(key,), input_keys=())
        return PrepareTask(tid, film.film_id, scene.scene_id, ids[0], key)
    if kind is TaskKind.IMAGE:
        n = _next_try(scene.slot(kind))
        tid = f"{film.film_id}/{scene.scene_id}/image/a{n}"
        key = f"{film.film_id}:{scene.scene_id}:image:a{n}"
        scene.image_running = tid
        led.running[tid] = RunningTask(kind=kind, film_id=film.film_id, scene_index=scene.index,
                                       worker_ids=ids, output_keys=(key,), input_keys=())
        return ImageTask(tid, film.film_id, scene.scene_id, ids[0], key)
    assert unit is not None
    if kind is TaskKind.PHASE:
        return replace(_start_phase(led, film, scene, unit, ids, layout or Layout(), gang),
                       adapter_loads=sum(x.count for x in loads),
                       adapter_load_bytes=max((x.bytes for x in loads), default=0))
    return _start_decode(led, film, scene, unit, ids)


def _next_try(t: Tries) -> int:
    t.started += 1
    return t.started


def _start_phase(led: Ledger, film: FilmRecord, scene: SceneState, unit: UnitState,
                 ids: tuple[str, ...], layout: Layout, gang: str = "") -> PhaseTask:
    phase_index = unit.phases_done
    phase = film.plan.phases[phase_index]
    attempt = _next_try(unit.slot(TaskKind.PHASE, phase_index))
    tid = f"{film.film_id}/{unit.plan.id}/p{phase_index}/a{attempt}"
    k = layout.size
    members = tuple(
        MemberTask(seg.id, ids[i * k], unit.latest.get(seg.id),
                   f"{film.film_id}:{seg.id}:p{phase_index}:a{attempt}",
                   ids[i * k + 1:(i + 1) * k])
        for i, seg in enumerate(unit.plan.segments))
    prev = edges.before(film, unit)
    cond = prev[1].condition_key if prev is not None else scene.image_key
    assert scene.prompt_key is not None
    inputs = tuple(member.input_key for member in members if member.input_key)
    inputs += (scene.prompt_key,)
    inputs += (cond,) if cond else ()
    unit.running = tid
    unit.gang = None  # reusable again only once this phase succeeds (reports)
    gang = gang or tid
    led.running[tid] = RunningTask(
        kind=TaskKind.PHASE, film_id=film.film_id, scene_index=scene.index, worker_ids=ids,
        output_keys=tuple(member.output_key for member in members), input_keys=inputs,
        unit_index=unit.plan.index, epoch=unit.epoch, phase_index=phase_index,
        leads=tuple(member.worker_id for member in members) if k > 1 else (),
        gang=GangMemo(gang, ids, layout) if k > 1 else None,
        active=(phase_need(film, unit), film.plan.adapter_key(scene.scene_id, phase_index)))
    return PhaseTask(task_id=tid, film_id=film.film_id, scene_id=scene.scene_id,
                     unit_id=unit.plan.id, phase_index=phase_index, expert=phase.expert,
                     start_step=phase.start, stop_step=phase.stop, members=members,
                     prompt_key=scene.prompt_key,
                     condition_key=cond, attempt=attempt, layout=layout,
                     gang_key=gang if k > 1 else "")


def _start_decode(led: Ledger, film: FilmRecord, scene: SceneState, unit: UnitState,
                  ids: tuple[str, ...]) -> DecodeTask:
    attempt = _next_try(unit.slot(TaskKind.DECODE))
    tid = f"{film.film_id}/{unit.plan.id}/decode/a{attempt}"
    slices = tuple(DecodeSlice(seg_id, unit.latest[seg_id], w.start - _seg_start(unit, seg_id),
                               w.stop - _seg_start(unit, seg_id))
                   for seg_id, w in unit.plan.decode_slices)
    nxt = _conditions(film, unit)
    cond_key, cond_frames, scene_key = None, 0, None
    if nxt is not None:
        cond_key = f"{film.film_id}:{unit.plan.id}:cond:a{attempt}"
        cond_frames = pixel_frames(nxt[1].plan.segments[0].window.size)
        scene_key = nxt[0].image_key if nxt[0].has_image else None  # the next clip's scene
    unit.running = tid
    led.running[tid] = RunningTask(
        kind=TaskKind.DECODE, film_id=film.film_id, scene_index=scene.index, worker_ids=ids,
        output_keys=(cond_key,) if cond_key else (),
        input_keys=tuple(x.key for x in slices) + ((scene_key,) if scene_key else ()),
        unit_index=unit.plan.index, epoch=unit.epoch)
    return DecodeTask(task_id=tid, film_id=film.film_id, scene_id=scene.scene_id,
                      unit_id=unit.plan.id, worker_id=ids[0], slices=slices,
                      frame_start=unit.plan.frame_start,
                      frame_stop=unit.plan.frame_stop, drop_frames=unit.plan.drop_frames,
                      condition_key=cond_key, condition_frames=cond_frames, attempt=attempt,
                      scene_key=scene_key, bands=decode_bands_of(film), band_workers=ids[1:])


def decode_bands_of(film: FilmRecord) -> int:
    spec = film.plan.film
    return decode_bands(spec.profile.vae_spatial, spec.width)


def _seg_start(unit: UnitState, seg_id: str) -> int:
    return next(seg.window.start for seg in unit.plan.segments if seg.id == seg_id)
