"""Task life cycle, part 2: what a report changes, data loss, and film endings. These
functions are the scheduler's internals and take it as their first argument.

Rules:
- A failed task leaves its unit at its last completed phase: the same phase runs again
  (a new attempt) from the inputs it had. `max_attempts` failures of one task fail the
  film; a worker blamed `exclude_after` times is excluded for that film.
- A task that died with its worker (`remove_worker`) is retried the same way, but it
  neither blames the worker nor uses an attempt: a node going away is rarely the task's
  fault. `max_worker_losses` such deaths (a task that kills every worker it touches)
  fail the film.
- Lost data (a worker died with it, or an executor reports `lost_keys`) rolls every
  unit that needed it back to initial noise (a new epoch); a running task of that unit
  is cancelled and its late report ignored (stale).
- A report for a film that already ended only frees what the task wrote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from farm.sched.output import (
    Event,
    FilmState,
    FilmStateChanged,
    FramesDecoded,
    PhaseFinished,
    TaskReport,
    TaskRetried,
)
from farm.sched.state import FilmRecord, RunningTask, SceneState, Tries, UnitState

if TYPE_CHECKING:
    from farm.sched.scheduler import Scheduler


def apply_report(s: Scheduler, run: RunningTask, report: TaskReport) -> list[Event]:
    f = s._films[run.film_id]
    sc = f.scenes[run.scene_index]
    u = sc.units[run.unit_index] if run.unit_index >= 0 else None
    tid = report.task_id
    if run.kind == "prepare" and sc.prompt_running == tid:
        sc.prompt_running = None
    elif run.kind == "image" and sc.image_running == tid:
        sc.image_running = None
    elif u is not None and u.running == tid:
        u.running = None
    ended = not f.schedulable and f.state != FilmState.PAUSED
    if ended or (u is not None and run.epoch != u.epoch):
        s._freed += run.output_keys  # nobody needs the results any more
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
    if run.kind == "phase":
        return _on_phase_done(s, f, sc, u, run, report.duration, report.output_bytes)
    return _on_decode_done(s, f, sc, u, run, report.duration)


def _on_phase_done(s: Scheduler, f: FilmRecord, sc: SceneState, u: UnitState,
                   run: RunningTask, duration: float, output_bytes: int = 0) -> list[Event]:
    assert run.phase_index == u.phases_done, "a unit runs one phase at a time"
    for seg, key, wid in zip(u.plan.segments, run.output_keys, run.homes, strict=True):
        old = u.latest.get(seg.id)
        if old:
            free_key(s, old)
        u.latest[seg.id], u.location[seg.id] = key, wid
        s._key_home[key] = wid
    u.phases_done += 1
    f.phases_done += 1
    u.gang = run.gang  # its workers keep these gangs open for the unit's next phase
    phase = f.plan.phases[run.phase_index]
    events: list[Event] = [PhaseFinished(f.film_id, u.plan.id, run.phase_index, phase.expert,
                                         phase.num_steps * len(u.plan.segments), run.worker_ids,
                                         time=s._now, duration=duration,
                                         output_bytes=output_bytes)]
    if u.phases_done == len(f.plan.phases):
        _free_inputs_of_done_unit(s, f, sc, u)
    return events


def _free_inputs_of_done_unit(s: Scheduler, f: FilmRecord, sc: SceneState, u: UnitState) -> None:
    """Conditioning and prompt are needed until the last phase that reads them (the
    scene's inputs also by the chain decodes before it)."""
    done = all(x.phases_done == len(f.plan.phases) for x in sc.units)
    if done and sc.image_key:
        free_key(s, sc.image_key)
        sc.image_key = None
    if u.plan.after:
        prev = sc.units[u.plan.index - 1]
        if prev.condition_key:
            free_key(s, prev.condition_key)
            prev.condition_key = None
    if done and sc.prompt_key:
        free_key(s, sc.prompt_key)
        sc.prompt_key = None


def _on_decode_done(s: Scheduler, f: FilmRecord, sc: SceneState, u: UnitState,
                    run: RunningTask, duration: float) -> list[Event]:
    u.decoded = True
    u.condition_key = run.output_keys[0] if run.output_keys else None
    if u.condition_key:
        s._key_home[u.condition_key] = run.worker_ids[0]
    for key in u.latest.values():
        free_key(s, key)
    u.latest.clear()
    u.location.clear()
    # A unit decoded again after a rollback yields the same frames: report only new ones.
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
    f.last_error = report.error or f.last_error
    culprit = None if report.worker_lost else _culprit(run, report)
    if culprit is not None:
        f.failures[culprit] += 1
        if f.failures[culprit] >= s.config.exclude_after:
            f.excluded.add(culprit)
    for key in report.lost_keys:
        invalidate_key(s, key)
    tries, what = _slot(sc, u, run)
    if report.worker_lost:
        tries.lost += 1
        if tries.lost >= s.config.max_worker_losses:
            reason = f"{what} lost its worker {tries.lost} times; last: {report.error}"
            return finish_film(s, f, FilmState.FAILED, reason)
    else:
        tries.failed += 1
        if tries.failed >= s.config.max_attempts:
            reason = f"{what} failed {tries.failed} times; last error: {report.error}"
            return finish_film(s, f, FilmState.FAILED, reason)
    return [TaskRetried(f.film_id, report.task_id, report.error, tries.started + 1, culprit,
                        time=s._now)]


def _slot(sc: SceneState, u: UnitState | None, run: RunningTask) -> tuple[Tries, str]:
    if run.kind == "prepare":
        return sc.slot("prompt"), f"prompt encoding of scene {sc.scene_id}"
    if run.kind == "image":
        return sc.slot("image"), f"image encoding of scene {sc.scene_id}"
    assert u is not None
    if run.kind == "phase":
        return u.slot("phase", run.phase_index), f"phase {run.phase_index} of {u.plan.id}"
    return u.slot("decode"), f"decode of {u.plan.id}"


def _culprit(run: RunningTask, report: TaskReport) -> str | None:
    """The worker to blame: the one named, or the only one involved. Missing input data
    is nobody's fault (it went with another worker)."""
    if report.lost_keys and report.worker_id is None:
        return None
    if report.worker_id is not None:
        return report.worker_id
    return run.worker_ids[0] if len(set(run.worker_ids)) == 1 else None


# ---- data and film endings -------------------------------------------------------------


def free_key(s: Scheduler, key: str) -> None:
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
                if key in u.latest.values() or key == u.condition_key:
                    reset_unit(s, f, sc, u)


def reset_unit(s: Scheduler, f: FilmRecord, sc: SceneState, u: UnitState) -> None:
    """Back to initial noise; frames already delivered stay delivered (same values).

    A chain unit also needs its predecessor's conditioning; when that was already freed,
    the predecessor is recomputed too. A task still running for the unit is cancelled.
    """
    if u.plan.after:
        prev = sc.units[u.plan.index - 1]
        if prev.condition_key is None and prev.decoded:
            reset_unit(s, f, sc, prev)
    if u.phases_done == 0 and not u.decoded and u.running is None:
        return  # nothing to roll back
    f.phases_done -= u.phases_done
    for key in list(u.latest.values()) + ([u.condition_key] if u.condition_key else []):
        free_key(s, key)
    if u.running is not None:
        s._cancelled.append(u.running)
        u.running = None
    u.phases_done, u.decoded, u.condition_key = 0, False, None
    u.epoch += 1
    u.latest.clear()
    u.location.clear()


def check_starved(s: Scheduler, f: FilmRecord, need: str) -> list[Event]:
    """No usable worker serves `need`: fail the film if exclusions caused it."""
    holders = [w for w in s._workers.values() if w.alive and w.serves(need, f.model)]
    if holders and all(w.spec.worker_id in f.excluded for w in holders):
        names = ", ".join(sorted(w.spec.worker_id for w in holders))
        last = f"; last error: {f.last_error}" if f.last_error else ""
        return finish_film(s, f, FilmState.FAILED, f"every worker holding {need!r} was excluded "
                                                   f"after repeated failures ({names}){last}")
    return []


def finish_film(s: Scheduler, f: FilmRecord, state: FilmState, reason: str) -> list[Event]:
    if f.state.is_final:
        return []  # a film ends once (e.g. two starved needs in one round)
    f.state, f.reason = state, reason
    for tid, run in s._running.items():
        if run.film_id == f.film_id:
            s._cancelled.append(tid)
    for sc in f.scenes:
        for key in (sc.prompt_key, sc.image_key):
            if key:
                free_key(s, key)
        sc.prompt_key = sc.image_key = None
        for u in sc.units:
            for key in list(u.latest.values()) + ([u.condition_key] if u.condition_key else []):
                free_key(s, key)
            u.latest.clear()
            u.condition_key = None
    return [FilmStateChanged(f.film_id, state, reason, time=s._now)]
