"""What a report changes, data loss, and film endings. These functions keep the
scheduler's books: they take its Ledger (farm.sched.state) as their first argument.

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
- Why a task or a film failed travels as a FailureKind: the executor's, on the report
  (INPUT_LOST when it names lost keys, ERROR when it names nothing); the scheduler's own
  for what it decides (WORKER_LOST, EXCLUDED, CANCELLED).
"""

from __future__ import annotations

from farm.sched.config import SchedulerConfig
from farm.sched.output import (
    Event,
    FailureKind,
    FilmState,
    FilmStateChanged,
    FramesDecoded,
    PhaseFinished,
    TaskKind,
    TaskReport,
    TaskRetried,
)
from farm.sched.state import FilmRecord, Ledger, RunningTask, SceneState, Tries, UnitState


def apply_report(led: Ledger, config: SchedulerConfig, run: RunningTask,
                 report: TaskReport) -> list[Event]:
    f = led.films[run.film_id]
    sc = f.scenes[run.scene_index]
    u = sc.units[run.unit_index] if run.unit_index is not None else None
    tid = report.task_id
    if run.kind is TaskKind.PREPARE and sc.prompt_running == tid:
        sc.prompt_running = None
    elif run.kind is TaskKind.IMAGE and sc.image_running == tid:
        sc.image_running = None
    elif u is not None and u.running == tid:
        u.running = None
    ended = not f.schedulable and f.state != FilmState.PAUSED
    if ended or (u is not None and run.epoch != u.epoch):
        led.freed += run.output_keys  # nobody needs the results any more
        return []
    if not report.ok:
        return _on_failure(led, config, f, sc, u, run, report)
    if run.kind in (TaskKind.PREPARE, TaskKind.IMAGE):
        key = run.output_keys[0]
        if run.kind is TaskKind.PREPARE:
            sc.prompt_key = key
        else:
            sc.image_key = key
        led.key_home[key] = run.worker_ids[0]
        return []
    assert u is not None
    if run.kind is TaskKind.PHASE:
        return _on_phase_done(led, f, sc, u, run, report.duration, report.output_bytes)
    return _on_decode_done(led, f, sc, u, run, report.duration)


def _on_phase_done(led: Ledger, f: FilmRecord, sc: SceneState, u: UnitState,
                   run: RunningTask, duration: float, output_bytes: int = 0) -> list[Event]:
    assert run.phase_index is not None and run.phase_index == u.phases_done, \
        "a unit runs one phase at a time"
    for seg, key, wid in zip(u.plan.segments, run.output_keys, run.homes, strict=True):
        old = u.latest.get(seg.id)
        if old:
            led.free(old)
        u.latest[seg.id], u.location[seg.id] = key, wid
        led.key_home[key] = wid
    u.phases_done += 1
    f.phases_done += 1
    u.gang = run.gang  # its workers keep these gangs open for the unit's next phase
    phase = f.plan.phases[run.phase_index]
    events: list[Event] = [PhaseFinished(f.film_id, u.plan.id, run.phase_index, phase.expert,
                                         phase.num_steps * len(u.plan.segments), run.worker_ids,
                                         time=led.now, duration=duration,
                                         output_bytes=output_bytes)]
    if u.phases_done == len(f.plan.phases):
        _free_inputs_of_done_unit(led, f, sc, u)
    return events


def _free_inputs_of_done_unit(led: Ledger, f: FilmRecord, sc: SceneState, u: UnitState) -> None:
    """Conditioning and prompt are needed until the last phase that reads them (the
    scene's inputs also by the chain decodes before it)."""
    done = all(x.phases_done == len(f.plan.phases) for x in sc.units)
    if done and sc.image_key:
        led.free(sc.image_key)
        sc.image_key = None
    if u.plan.after:
        prev = sc.units[u.plan.index - 1]
        if prev.condition_key:
            led.free(prev.condition_key)
            prev.condition_key = None
    if done and sc.prompt_key:
        led.free(sc.prompt_key)
        sc.prompt_key = None


def _on_decode_done(led: Ledger, f: FilmRecord, sc: SceneState, u: UnitState,
                    run: RunningTask, duration: float) -> list[Event]:
    u.decoded = True
    u.condition_key = run.output_keys[0] if run.output_keys else None
    if u.condition_key:
        led.key_home[u.condition_key] = run.worker_ids[0]
    for key in u.latest.values():
        led.free(key)
    u.latest.clear()
    u.location.clear()
    # A unit decoded again after a rollback yields the same frames: report only new ones.
    start = max(sc.frames_done, u.plan.frame_start)
    sc.frames_done = max(sc.frames_done, u.plan.frame_stop)
    events: list[Event] = []
    if sc.frames_done > start:
        events.append(FramesDecoded(f.film_id, sc.scene_id, start, sc.frames_done, time=led.now,
                                    duration=duration))
    if all(x.decoded for scene in f.scenes for x in scene.units):
        events += finish_film(led, f, FilmState.SUCCEEDED, "")
    return events


def _on_failure(led: Ledger, config: SchedulerConfig, f: FilmRecord, sc: SceneState,
                u: UnitState | None, run: RunningTask, report: TaskReport) -> list[Event]:
    led.freed += run.output_keys
    f.last_error = report.error or f.last_error
    failure = failure_of(report)
    culprit = None if failure is FailureKind.WORKER_LOST else _culprit(run, report)
    if culprit is not None:
        f.failures[culprit] += 1
        if f.failures[culprit] >= config.exclude_after:
            f.excluded.add(culprit)
    for key in report.lost_keys:
        invalidate_key(led, key)
    tries, what = _slot(sc, u, run)
    if failure is FailureKind.WORKER_LOST:
        tries.lost += 1
        if tries.lost >= config.max_worker_losses:
            reason = f"{what} lost its worker {tries.lost} times; last: {report.error}"
            return finish_film(led, f, FilmState.FAILED, reason, failure)
    else:
        tries.failed += 1
        if tries.failed >= config.max_attempts:
            reason = f"{what} failed {tries.failed} times; last error: {report.error}"
            return finish_film(led, f, FilmState.FAILED, reason, failure)
    return [TaskRetried(f.film_id, report.task_id, report.error, tries.started + 1, culprit,
                        time=led.now, failure=failure)]


def failure_of(report: TaskReport) -> FailureKind:
    """The kind the executor gave a failed report; without one, a report that names lost
    keys lost its input, and any other is an error."""
    if report.failure is not None:
        return report.failure
    return FailureKind.INPUT_LOST if report.lost_keys else FailureKind.ERROR


def _slot(sc: SceneState, u: UnitState | None, run: RunningTask) -> tuple[Tries, str]:
    if run.kind is TaskKind.PREPARE:
        return sc.slot(run.kind), f"prompt encoding of scene {sc.scene_id}"
    if run.kind is TaskKind.IMAGE:
        return sc.slot(run.kind), f"image encoding of scene {sc.scene_id}"
    assert u is not None
    if run.kind is TaskKind.PHASE and run.phase_index is not None:
        return u.slot(run.kind, run.phase_index), f"phase {run.phase_index} of {u.plan.id}"
    return u.slot(run.kind), f"decode of {u.plan.id}"


def _culprit(run: RunningTask, report: TaskReport) -> str | None:
    """The worker to blame: the one named, or the only one involved. Missing input data
    is nobody's fault (it went with another worker)."""
    if report.lost_keys and report.worker_id is None:
        return None
    if report.worker_id is not None:
        return report.worker_id
    return run.worker_ids[0] if len(set(run.worker_ids)) == 1 else None


# ---- data and film endings -------------------------------------------------------------


def invalidate_key(led: Ledger, key: str) -> None:
    """Data under `key` is gone: roll back whatever depended on it."""
    led.key_home.pop(key, None)
    for f in led.films.values():
        if f.state.is_final:
            continue
        for sc in f.scenes:
            if sc.prompt_key == key:
                sc.prompt_key = None
            if sc.image_key == key:
                sc.image_key = None
            for u in sc.units:
                if key in u.latest.values() or key == u.condition_key:
                    reset_unit(led, f, sc, u)


def reset_unit(led: Ledger, f: FilmRecord, sc: SceneState, u: UnitState) -> None:
    """Back to initial noise; frames already delivered stay delivered (same values).

    A chain unit also needs its predecessor's conditioning; when that was already freed,
    the predecessor is recomputed too. A task still running for the unit is cancelled.
    """
    if u.plan.after:
        prev = sc.units[u.plan.index - 1]
        if prev.condition_key is None and prev.decoded:
            reset_unit(led, f, sc, prev)
    if u.phases_done == 0 and not u.decoded and u.running is None:
        return  # nothing to roll back
    f.phases_done -= u.phases_done
    for key in list(u.latest.values()) + ([u.condition_key] if u.condition_key else []):
        led.free(key)
    if u.running is not None:
        led.cancelled.append(u.running)
        u.running = None
    u.phases_done, u.decoded, u.condition_key = 0, False, None
    u.epoch += 1
    u.latest.clear()
    u.location.clear()


def check_starved(led: Ledger, f: FilmRecord, need: str) -> list[Event]:
    """No usable worker serves `need`: fail the film if exclusions caused it."""
    holders = [w for w in led.workers.values() if w.alive and w.serves(need, f.model)]
    if holders and all(w.spec.worker_id in f.excluded for w in holders):
        names = ", ".join(sorted(w.spec.worker_id for w in holders))
        last = f"; last error: {f.last_error}" if f.last_error else ""
        return finish_film(led, f, FilmState.FAILED, f"every worker holding {need!r} was "
                           f"excluded after repeated failures ({names}){last}",
                           FailureKind.EXCLUDED)
    return []


def finish_film(led: Ledger, f: FilmRecord, state: FilmState, reason: str,
                failure: FailureKind | None = None) -> list[Event]:
    """End a film; `failure` says why one FAILED or was CANCELLED."""
    if f.state.is_final:
        return []  # a film ends once (e.g. two starved needs in one round)
    f.state, f.reason = state, reason
    for tid, run in led.running.items():
        if run.film_id == f.film_id:
            led.cancelled.append(tid)
    for sc in f.scenes:
        for key in (sc.prompt_key, sc.image_key):
            if key:
                led.free(key)
        sc.prompt_key = sc.image_key = None
        for u in sc.units:
            for key in list(u.latest.values()) + ([u.condition_key] if u.condition_key else []):
                led.free(key)
            u.latest.clear()
            u.condition_key = None
    return [FilmStateChanged(f.film_id, state, reason, time=led.now, failure=failure)]
