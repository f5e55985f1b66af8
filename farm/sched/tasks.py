"""Task life cycle for the scheduler: which tasks are ready, starting them, and what a
report changes. Split from scheduler.py to keep each file readable; these functions are
the scheduler's internals and take it as their first argument.

Keys of the data a task writes (the executor stores the data under them):

    prompt      <film>:<scene>:prompt:a<attempt>
    image       <film>:<scene>:image:a<attempt>            first-frame conditioning
    phase out   <film>:<segment>:p<phase>:a<attempt>      latents + solver state
    condition   <film>:<unit>:cond:a<attempt>              chain: next unit's first frame
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from farm.sched.output import (
    DecodeSlice,
    DecodeTask,
    Event,
    FilmState,
    FilmStateChanged,
    FramesDecoded,
    ImageTask,
    MemberTask,
    PhaseFinished,
    PhaseTask,
    PrepareTask,
    TaskReport,
    TaskRetried,
)
from farm.sched.state import FilmRecord, RunningTask, SceneState, UnitState
from farm.spec.frames import pixel_frames

if TYPE_CHECKING:
    from farm.sched.scheduler import Scheduler

# A candidate: (kind, scene, unit or None)
Candidate = tuple[str, SceneState, UnitState | None]


def candidates(s: Scheduler, f: FilmRecord) -> list[Candidate]:
    """Ready tasks of a film in playback order (earlier scenes and units first)."""
    out: list[Candidate] = []
    num_phases = len(f.plan.phases)
    for sc in f.scenes:
        needs_prompt = any(u.phases_done < num_phases for u in sc.units)
        if sc.prompt_key is None and sc.prompt_running is None and needs_prompt:
            out.append(("prepare", sc, None))
        if (sc.has_image and sc.image_key is None and sc.image_running is None
                and sc.units[0].phases_done < num_phases):
            out.append(("image", sc, None))
        earlier_decoded = True
        for k, u in enumerate(sc.units):
            if u.running is None:
                if u.phases_done < num_phases:
                    if sc.prompt_key is not None and _chain_ready(sc, k):
                        out.append(("phase", sc, u))
                elif not u.decoded and earlier_decoded:
                    out.append(("decode", sc, u))
            earlier_decoded = earlier_decoded and u.decoded
    return out


def _chain_ready(sc: SceneState, k: int) -> bool:
    if sc.units[k].plan.after is None:
        return not sc.has_image or sc.image_key is not None
    prev = sc.units[k - 1]
    return prev.decoded and prev.condition_key is not None


def requirements(s: Scheduler, f: FilmRecord, cand: Candidate) -> tuple[str, int, tuple]:
    """(what a worker must hold, number of members, preferred worker per member)."""
    kind, _, u = cand
    if kind == "prepare":
        return "text", 1, ()
    if kind in ("decode", "image"):
        return "vae", 1, ()
    assert u is not None
    expert = f.plan.film.profile.experts[f.plan.phases[u.phases_done].expert]
    return expert, len(u.plan.segments), tuple(u.location.get(seg.id) for seg in u.plan.segments)


def start(s: Scheduler, f: FilmRecord, cand: Candidate, ids: tuple[str, ...]):
    kind, sc, u = cand
    for wid in ids:
        s._workers[wid].busy += 1
    if kind == "prepare":
        attempt = sc.prompt_attempts + 1
        tid = f"{f.film_id}/{sc.scene_id}/prepare/a{attempt}"
        key = f"{f.film_id}:{sc.scene_id}:prompt:a{attempt}"
        sc.prompt_running = tid
        s._running[tid] = RunningTask("prepare", f.film_id, sc.index, -1, -1, ids, (key,), ())
        return PrepareTask(tid, f.film_id, sc.scene_id, ids[0], key)
    if kind == "image":
        attempt = sc.image_attempts + 1
        tid = f"{f.film_id}/{sc.scene_id}/image/a{attempt}"
        key = f"{f.film_id}:{sc.scene_id}:image:a{attempt}"
        sc.image_running = tid
        s._running[tid] = RunningTask("image", f.film_id, sc.index, -1, -1, ids, (key,), ())
        return ImageTask(tid, f.film_id, sc.scene_id, ids[0], key)
    assert u is not None
    return (_start_phase if kind == "phase" else _start_decode)(s, f, sc, u, ids)


def _start_phase(s: Scheduler, f: FilmRecord, sc: SceneState, u: UnitState,
                 ids: tuple[str, ...]) -> PhaseTask:
    p = u.phases_done
    phase = f.plan.phases[p]
    attempt = u.attempts[("phase", p)] + 1
    tid = f"{f.film_id}/{u.plan.id}/p{p}/a{attempt}"
    members = tuple(
        MemberTask(seg.id, wid, u.latest.get(seg.id), f"{f.film_id}:{seg.id}:p{p}:a{attempt}")
        for seg, wid in zip(u.plan.segments, ids, strict=True))
    cond = sc.units[u.plan.index - 1].condition_key if u.plan.after else sc.image_key
    assert sc.prompt_key is not None
    inputs = tuple(m.input_key for m in members if m.input_key) + (sc.prompt_key,)
    inputs += (cond,) if cond else ()
    u.running = tid
    f.service += phase.num_steps * len(members)
    s._running[tid] = RunningTask("phase", f.film_id, sc.index, u.plan.index, p, ids,
                                  tuple(m.output_key for m in members), inputs)
    return PhaseTask(tid, f.film_id, sc.scene_id, u.plan.id, p, phase.expert, phase.start,
                     phase.stop, members, sc.prompt_key, cond, attempt)


def _start_decode(s: Scheduler, f: FilmRecord, sc: SceneState, u: UnitState,
                  ids: tuple[str, ...]) -> DecodeTask:
    attempt = u.attempts[("decode", 0)] + 1
    tid = f"{f.film_id}/{u.plan.id}/decode/a{attempt}"
    slices = tuple(DecodeSlice(seg_id, u.latest[seg_id], w.start - _seg_start(u, seg_id),
                               w.stop - _seg_start(u, seg_id))
                   for seg_id, w in u.plan.decode_slices)
    nxt = sc.units[u.plan.index + 1] if u.plan.index + 1 < len(sc.units) else None
    cond_key, cond_frames = None, 0
    if nxt is not None and nxt.plan.after == u.plan.id:
        cond_key = f"{f.film_id}:{u.plan.id}:cond:a{attempt}"
        cond_frames = pixel_frames(nxt.plan.segments[0].window.size)
    u.running = tid
    s._running[tid] = RunningTask("decode", f.film_id, sc.index, u.plan.index, -1, ids,
                                  (cond_key,) if cond_key else (), tuple(x.key for x in slices))
    return DecodeTask(tid, f.film_id, sc.scene_id, u.plan.id, ids[0], slices, u.plan.frame_start,
                      u.plan.frame_stop, u.plan.drop_frames, cond_key, cond_frames, attempt)


def _seg_start(u: UnitState, seg_id: str) -> int:
    return next(seg.window.start for seg in u.plan.segments if seg.id == seg_id)


# ---- reports -------------------------------------------------------------------------


def apply_report(s: Scheduler, run: RunningTask, report: TaskReport) -> list[Event]:
    f = s._films[run.film_id]
    sc = f.scenes[run.scene_index]
    u = sc.units[run.unit_index] if run.unit_index >= 0 else None
    if run.kind == "prepare":
        sc.prompt_running = None
    elif run.kind == "image":
        sc.image_running = None
    elif u is not None:
        u.running = None
    if not f.schedulable and f.state != FilmState.PAUSED:
        s._freed += run.output_keys  # film finished meanwhile: results are not needed
        return []
    if not report.ok:
        return _on_failure(s, f, sc, u, run, report)
    if run.kind in ("prepare", "image"):
        key = run.output_keys[0]
        if run.kind == "prepare":
            sc.prompt_key = key
        else:
            sc.image_key = key
        s._key_home[key] = run.worker_ids[0]
        return []
    assert u is not None
    return (_on_phase_done if run.kind == "phase" else _on_decode_done)(s, f, sc, u, run,
                                                                            report.duration)


def _on_phase_done(s: Scheduler, f: FilmRecord, sc: SceneState, u: UnitState,
                   run: RunningTask, duration: float) -> list[Event]:
    if run.phase_index != u.phases_done:  # the unit was rolled back while this ran
        s._freed += run.output_keys
        return []
    for seg, key, wid in zip(u.plan.segments, run.output_keys, run.worker_ids, strict=True):
        old = u.latest.get(seg.id)
        if old:
            _free(s, old)
        u.latest[seg.id], u.location[seg.id] = key, wid
        s._key_home[key] = wid
    u.phases_done += 1
    f.phases_done += 1
    phase = f.plan.phases[run.phase_index]
    events: list[Event] = [PhaseFinished(f.film_id, u.plan.id, run.phase_index, phase.expert,
                                         phase.num_steps * len(u.plan.segments), run.worker_ids,
                                         time=s._now, duration=duration)]
    if u.phases_done == len(f.plan.phases):
        if u.plan.index == 0 and sc.image_key:
            _free(s, sc.image_key)
            sc.image_key = None
        if u.plan.after:
            prev = sc.units[u.plan.index - 1]
            if prev.condition_key:
                _free(s, prev.condition_key)
                prev.condition_key = None
        if all(x.phases_done == len(f.plan.phases) for x in sc.units) and sc.prompt_key:
            _free(s, sc.prompt_key)
            sc.prompt_key = None
    return events


def _on_decode_done(s: Scheduler, f: FilmRecord, sc: SceneState, u: UnitState,
                    run: RunningTask, duration: float) -> list[Event]:
    if u.phases_done != len(f.plan.phases):  # rolled back while decoding
        s._freed += run.output_keys
        return []
    u.decoded = True
    u.condition_key = run.output_keys[0] if run.output_keys else None
    if u.condition_key:
        s._key_home[u.condition_key] = run.worker_ids[0]
    for key in u.latest.values():
        _free(s, key)
    u.latest.clear()
    u.location.clear()
    start = max(sc.frames_done, u.plan.frame_start)
    sc.frames_done = max(sc.frames_done, u.plan.frame_stop)
    events: list[Event] = []
    if sc.frames_done > start:
        events.append(FramesDecoded(f.film_id, sc.scene_id, start, sc.frames_done, time=s._now,
                                    duration=duration))
    if all(x.decoded for scene in f.scenes for x in scene.units):
        events += finish_film(s, f, FilmState.SUCCEEDED, "")
    return events


def _on_failure(s: Scheduler, f: FilmRecord, sc: SceneState, u: UnitState | None,
                run: RunningTask, report: TaskReport) -> list[Event]:
    s._freed += run.output_keys
    culprit = report.worker_id or (run.worker_ids[0] if len(set(run.worker_ids)) == 1 else None)
    if culprit is not None:
        f.failures[culprit] += 1
        if f.failures[culprit] >= s.config.exclude_after:
            f.excluded.add(culprit)
    for key in report.lost_keys:
        invalidate_key(s, key)
    if run.kind == "prepare":
        sc.prompt_attempts += 1
        used, what = sc.prompt_attempts, f"prompt encoding of scene {sc.scene_id}"
    elif run.kind == "image":
        sc.image_attempts += 1
        used, what = sc.image_attempts, f"image encoding of scene {sc.scene_id}"
    else:
        assert u is not None
        slot = (run.kind, max(run.phase_index, 0))
        u.attempts[slot] += 1
        used = u.attempts[slot]
        what = (f"phase {run.phase_index} of {u.plan.id}" if run.kind == "phase"
                else f"decode of {u.plan.id}")
    if used >= s.config.max_attempts:
        reason = f"{what} failed {used} times; last error: {report.error}"
        return finish_film(s, f, FilmState.FAILED, reason)
    return [TaskRetried(f.film_id, report.task_id, report.error, used + 1, culprit, time=s._now)]


# ---- data and film endings -------------------------------------------------------------


def _free(s: Scheduler, key: str) -> None:
    s._freed.append(key)
    s._key_home.pop(key, None)


def invalidate_key(s: Scheduler, key: str) -> None:
    """Data under `key` is gone: roll back whatever depended on it."""
    s._key_home.pop(key, None)
    for f in s._films.values():
        if f.state.is_final:
            continue
        for sc in f.scenes:
            if sc.prompt_key == key:
                sc.prompt_key = None
            if sc.image_key == key:
                sc.image_key = None
            for u in sc.units:
                if key in u.latest.values() or (key == u.condition_key):
                    _reset_unit(s, f, sc, u)


def _reset_unit(s: Scheduler, f: FilmRecord, sc: SceneState, u: UnitState) -> None:
    """Back to initial noise; frames already delivered stay delivered (same values).

    A chain unit also needs its predecessor's conditioning; when that was already freed,
    the predecessor is recomputed too.
    """
    if u.plan.after:
        prev = sc.units[u.plan.index - 1]
        if prev.condition_key is None and prev.decoded:
            _reset_unit(s, f, sc, prev)
    f.phases_done -= u.phases_done
    for key in u.latest.values():
        _free(s, key)
    u.phases_done, u.decoded, u.condition_key = 0, False, None
    u.latest.clear()
    u.location.clear()


def check_starved(s: Scheduler, f: FilmRecord, need: str) -> list[Event]:
    """No usable worker holds `need`: fail the film if exclusions caused it."""
    holders = [w for w in s._workers.values() if w.alive and need in w.spec.holds]
    if holders and all(w.spec.worker_id in f.excluded for w in holders):
        names = ", ".join(sorted(w.spec.worker_id for w in holders))
        return finish_film(s, f, FilmState.FAILED,
                           f"every worker holding {need!r} was excluded after repeated failures ({names})")
    return []


def finish_film(s: Scheduler, f: FilmRecord, state: FilmState, reason: str) -> list[Event]:
    f.state, f.reason = state, reason
    for tid, run in s._running.items():
        if run.film_id == f.film_id:
            s._cancelled.append(tid)
    for sc in f.scenes:
        for key in (sc.prompt_key, sc.image_key):
            if key:
                _free(s, key)
        sc.prompt_key = sc.image_key = None
        for u in sc.units:
            for key in list(u.latest.values()) + ([u.condition_key] if u.condition_key else []):
                _free(s, key)
            u.latest.clear()
            u.condition_key = None
    return [FilmStateChanged(f.film_id, state, reason, time=s._now)]
