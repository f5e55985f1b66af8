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
    condition   <film>:<unit>:cond:a<n>                  chain: next unit's first frame
"""

from __future__ import annotations

from typing import NamedTuple

from farm.plan.segments import decode_bands
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


def candidates(f: FilmRecord) -> list[Candidate]:
    """Ready tasks of a film in playback order (earlier scenes and units first)."""
    out: list[Candidate] = []
    num_phases = len(f.plan.phases)
    for sc in f.scenes:
        needs_prompt = any(u.phases_done < num_phases for u in sc.units)
        if sc.prompt_key is None and sc.prompt_running is None and needs_prompt:
            out.append(Candidate(TaskKind.PREPARE, sc, None))
        if (sc.has_image and sc.image_key is None and sc.image_running is None
                and needs_prompt):  # chain decodes reuse the inputs until the last phase
            out.append(Candidate(TaskKind.IMAGE, sc, None))
        earlier_decoded = True
        for k, u in enumerate(sc.units):
            if u.running is None:
                if u.phases_done < num_phases:
                    if sc.prompt_key is not None and _chain_ready(sc, k):
                        out.append(Candidate(TaskKind.PHASE, sc, u))
                elif not u.decoded and earlier_decoded and _decode_ready(sc, k):
                    out.append(Candidate(TaskKind.DECODE, sc, u))
            earlier_decoded = earlier_decoded and u.decoded
    return out


def _chain_ready(sc: SceneState, k: int) -> bool:
    if sc.units[k].plan.after is None:
        return not sc.has_image or sc.image_key is not None
    prev = sc.units[k - 1]
    return prev.decoded and prev.condition_key is not None


def _decode_ready(sc: SceneState, k: int) -> bool:
    """A chain decode that builds the next unit's conditioning needs the scene's inputs."""
    nxt = sc.units[k + 1] if k + 1 < len(sc.units) else None
    return not (sc.has_image and nxt is not None and nxt.plan.after) or sc.image_key is not None


def requirements(f: FilmRecord, cand: Candidate) -> tuple[Need, int, tuple[str | None, ...]]:
    """(what a worker must serve, number of members, preferred worker per member)."""
    kind, _, u = cand
    if kind is TaskKind.PREPARE:
        return Need("text", f.model), 1, ()
    if kind is TaskKind.IMAGE:
        return Need("vae", f.model), 1, ()
    assert u is not None
    if kind is TaskKind.DECODE:  # the decoder reads every slice; start where the first lives
        return Need("vae", f.model), 1, (u.location.get(u.plan.decode_slices[0][0]),)
    expert = f.plan.film.profile.experts[f.plan.phases[u.phases_done].expert]
    return Need(expert, f.model), len(u.plan.segments), tuple(
        u.location.get(seg.id) for seg in u.plan.segments)


def phase_guidance(f: FilmRecord, cand: Candidate) -> float:
    """Guidance of the unit's next phase (CFG parallel needs > 1)."""
    _, sc, u = cand
    assert u is not None
    return f.plan.film.scene(sc.scene_id).guidance[f.plan.phases[u.phases_done].expert]


def phase_work(f: FilmRecord, u: UnitState) -> float:
    """Fair-share charge of the unit's next phase: steps x tokens."""
    return f.plan.phases[u.phases_done].num_steps * unit_tokens(f.plan, u.plan)


def start(led: Ledger, f: FilmRecord, cand: Candidate, ids: tuple[str, ...],
          layout: Layout | None = None, gang: str = "") -> Task:
    """Start a candidate on `ids` (a phase: each member's ranks, members in order; `gang`
    names the gangs it reuses, "" for new ones)."""
    kind, sc, u = cand
    for wid in ids:
        led.workers[wid].busy += 1
    f.started = True
    if kind is TaskKind.PREPARE:
        n = _next_try(sc.slot(kind))
        tid = f"{f.film_id}/{sc.scene_id}/prepare/a{n}"
        key = f"{f.film_id}:{sc.scene_id}:prompt:a{n}"
        sc.prompt_running = tid
        led.running[tid] = RunningTask(kind=kind, film_id=f.film_id, scene_index=sc.index,
                                       worker_ids=ids, output_keys=(key,), input_keys=())
        return PrepareTask(tid, f.film_id, sc.scene_id, ids[0], key)
    if kind is TaskKind.IMAGE:
        n = _next_try(sc.slot(kind))
        tid = f"{f.film_id}/{sc.scene_id}/image/a{n}"
        key = f"{f.film_id}:{sc.scene_id}:image:a{n}"
        sc.image_running = tid
        led.running[tid] = RunningTask(kind=kind, film_id=f.film_id, scene_index=sc.index,
                                       worker_ids=ids, output_keys=(key,), input_keys=())
        return ImageTask(tid, f.film_id, sc.scene_id, ids[0], key)
    assert u is not None
    if kind is TaskKind.PHASE:
        return _start_phase(led, f, sc, u, ids, layout or Layout(), gang)
    return _start_decode(led, f, sc, u, ids)


def _next_try(t: Tries) -> int:
    t.started += 1
    return t.started


def _start_phase(led: Ledger, f: FilmRecord, sc: SceneState, u: UnitState,
                 ids: tuple[str, ...], layout: Layout, gang: str = "") -> PhaseTask:
    p = u.phases_done
    phase = f.plan.phases[p]
    attempt = _next_try(u.slot(TaskKind.PHASE, p))
    tid = f"{f.film_id}/{u.plan.id}/p{p}/a{attempt}"
    k = layout.size
    members = tuple(
        MemberTask(seg.id, ids[i * k], u.latest.get(seg.id),
                   f"{f.film_id}:{seg.id}:p{p}:a{attempt}",
                   ids[i * k + 1:(i + 1) * k])
        for i, seg in enumerate(u.plan.segments))
    cond = sc.units[u.plan.index - 1].condition_key if u.plan.after else sc.image_key
    assert sc.prompt_key is not None
    inputs = tuple(m.input_key for m in members if m.input_key) + (sc.prompt_key,)
    inputs += (cond,) if cond else ()
    u.running = tid
    u.gang = None  # reusable again only once this phase succeeds (reports)
    gang = gang or tid
    led.running[tid] = RunningTask(
        kind=TaskKind.PHASE, film_id=f.film_id, scene_index=sc.index, worker_ids=ids,
        output_keys=tuple(m.output_key for m in members), input_keys=inputs,
        unit_index=u.plan.index, epoch=u.epoch, phase_index=p,
        leads=tuple(m.worker_id for m in members) if k > 1 else (),
        gang=GangMemo(gang, ids, layout) if k > 1 else None)
    return PhaseTask(task_id=tid, film_id=f.film_id, scene_id=sc.scene_id, unit_id=u.plan.id,
                     phase_index=p, expert=phase.expert, start_step=phase.start,
                     stop_step=phase.stop, members=members, prompt_key=sc.prompt_key,
                     condition_key=cond, attempt=attempt, layout=layout,
                     gang_key=gang if k > 1 else "")


def _start_decode(led: Ledger, f: FilmRecord, sc: SceneState, u: UnitState,
                  ids: tuple[str, ...]) -> DecodeTask:
    attempt = _next_try(u.slot(TaskKind.DECODE))
    tid = f"{f.film_id}/{u.plan.id}/decode/a{attempt}"
    slices = tuple(DecodeSlice(seg_id, u.latest[seg_id], w.start - _seg_start(u, seg_id),
                               w.stop - _seg_start(u, seg_id))
                   for seg_id, w in u.plan.decode_slices)
    nxt = sc.units[u.plan.index + 1] if u.plan.index + 1 < len(sc.units) else None
    cond_key, cond_frames = None, 0
    if nxt is not None and nxt.plan.after == u.plan.id:
        cond_key = f"{f.film_id}:{u.plan.id}:cond:a{attempt}"
        cond_frames = pixel_frames(nxt.plan.segments[0].window.size)
    scene_key = sc.image_key if cond_key and sc.has_image else None
    u.running = tid
    led.running[tid] = RunningTask(
        kind=TaskKind.DECODE, film_id=f.film_id, scene_index=sc.index, worker_ids=ids,
        output_keys=(cond_key,) if cond_key else (),
        input_keys=tuple(x.key for x in slices) + ((scene_key,) if scene_key else ()),
        unit_index=u.plan.index, epoch=u.epoch)
    return DecodeTask(task_id=tid, film_id=f.film_id, scene_id=sc.scene_id, unit_id=u.plan.id,
                      worker_id=ids[0], slices=slices, frame_start=u.plan.frame_start,
                      frame_stop=u.plan.frame_stop, drop_frames=u.plan.drop_frames,
                      condition_key=cond_key, condition_frames=cond_frames, attempt=attempt,
                      scene_key=scene_key, bands=decode_bands_of(f), band_workers=ids[1:])


def decode_bands_of(f: FilmRecord) -> int:
    film = f.plan.film
    return decode_bands(film.profile.vae_spatial, film.width)


def _seg_start(u: UnitState, seg_id: str) -> int:
    return next(seg.window.start for seg in u.plan.segments if seg.id == seg_id)
