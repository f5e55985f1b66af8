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

from farm.sched import edges
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
    film = led.films[run.film_id]
    scene = film.scenes[run.scene_index]
    unit = scene.units[run.unit_index] if run.unit_index is not None else None
    tid = report.task_id
    if run.kind is TaskKind.PREPARE and scene.prompt_running == tid:
        scene.prompt_running = None
    elif run.kind is TaskKind.IMAGE and scene.image_running == tid:
        scene.image_running = None
    elif unit is not None and unit.running == tid:
        unit.running = None
    if not report.ok and run.gang is not None:  # a failed phase aborts its gangs (shards)
        led.shard_gangs.pop(run.gang.key, None)
    ended = not film.schedulable and film.state != FilmState.PAUSED
    if ended or (unit is not None and run.epoch != unit.epoch):
        led.freed += run.output_keys  # nobody needs the results any more
        return []
    if not report.ok:
        return _on_failure(led, config, film, scene, unit, run, report)
    if run.kind in (TaskKind.PREPARE, TaskKind.IMAGE):
        key = run.output_keys[0]
        if run.kind is TaskKind.PREPARE:
            scene.prompt_key = key
        else:
            scene.image_key = key
        led.key_home[key] = run.worker_ids[0]
        return []
    assert unit is not None
    if run.kind is TaskKind.PHASE:
        return _on_phase_done(led, film, scene, unit, run, report.duration, report.output_bytes,
                              report.note)
    return _on_decode_done(led, film, scene, unit, run, report.duration)


def _on_phase_done(led: Ledger, film: FilmRecord, scene: SceneState, unit: UnitState,
                   run: RunningTask, duration: float, output_bytes: int = 0,
                   note: str = "") -> list[Event]:
    assert run.phase_index is not None and run.phase_index == unit.phases_done, \
        "a unit runs one phase at a time"
    for seg, key, wid in zip(unit.plan.segments, run.output_keys, run.homes, strict=True):
        old = unit.latest.get(seg.id)
        if old:
            led.free(old)
        unit.latest[seg.id], unit.location[seg.id] = key, wid
        led.key_home[key] = wid
    unit.phases_done += 1
    film.phases_done += 1
    unit.gang = run.gang  # its workers keep these gangs open for the unit's next phase
    if run.gang is not None and all(led.workers[w].spec.offload == "shard"
                                    for w in run.gang.worker_ids if w in led.workers):
        led.shard_gangs[run.gang.key] = (run.gang, film.model)  # with their shards
    phase = film.plan.phases[run.phase_index]
    events: list[Event] = [PhaseFinished(film.film_id, unit.plan.id, run.phase_index, phase.expert,
                                         phase.num_steps * len(unit.plan.segments), run.worker_ids,
                                         time=led.now, duration=duration,
                                         output_bytes=output_bytes, note=note)]
    if unit.phases_done == len(film.plan.phases):
        _free_inputs_of_done_unit(led, film, scene, unit)
    return events


def _free_inputs_of_done_unit(led: Ledger, film: FilmRecord, scene: SceneState,
                              unit: UnitState) -> None:
    """Conditioning and prompt are needed until the last phase that reads them (the
    scene's inputs also by the chain decodes before it)."""
    done = all(x.phases_done == len(film.plan.phases) for x in scene.units)
    if done and scene.image_key:
        led.free(scene.image_key)
        scene.image_key = None
    if (edge := edges.before(film, unit)) is not None:
        prev = edge[1]
        if prev.condition_key:
            led.free(prev.condition_key)
            prev.condition_key = None
    if done and scene.prompt_key:
        led.free(scene.prompt_key)
        scene.prompt_key = None


def _on_decode_done(led: Ledger, film: FilmRecord, scene: SceneState, unit: UnitState,
                    run: RunningTask, duration: float) -> list[Event]:
    unit.decoded = True
    unit.condition_key = run.output_keys[0] if run.output_keys else None
    if unit.condition_key:
        led.key_home[unit.condition_key] = run.worker_ids[0]
    for key in unit.latest.values():
        led.free(key)
    unit.latest.clear()
    unit.location.clear()
    # A unit decoded again after a rollback yields the same frames: report only new ones.
    start = max(scene.frames_done, unit.plan.frame_start)
    scene.frames_done = max(scene.frames_done, unit.plan.frame_stop)
    events: list[Event] = []
    if scene.frames_done > start:
        events.append(FramesDecoded(film.film_id, scene.scene_id, start, scene.frames_done,
                                    time=led.now, duration=duration))
    if all(x.decoded for each in film.scenes for x in each.units):
        events += finish_film(led, film, FilmState.SUCCEEDED, "")
    return events


def _on_failure(led: Ledger, config: SchedulerConfig, film: FilmRecord, scene: SceneState,
                unit: UnitState | None, run: RunningTask, report: TaskReport) -> list[Event]:
    led.freed += run.output_keys
    film.last_error = report.error or film.last_error
    failure = failure_of(report)
    culprit = None if failure is FailureKind.WORKER_LOST else _culprit(run, report)
    if culprit is not None:
        film.failures[culprit] += 1
        if film.failures[culprit] >= config.exclude_after:
            film.excluded.add(culprit)
    for key in report.lost_keys:
        invalidate_key(led, key)
    tries, what = _slot(scene, unit, run)
    if failure is FailureKind.WORKER_LOST:
        tries.lost += 1
        if tries.lost >= config.max_worker_losses:
            reason = f"{what} lost its worker {tries.lost} times; last: {report.error}"
            return finish_film(led, film, FilmState.FAILED, reason, failure)
    else:
        tries.failed += 1
        if tries.failed >= config.max_attempts:
            reason = f"{what} failed {tries.failed} times; last error: {report.error}"
            return finish_film(led, film, FilmState.FAILED, reason, failure)
    return [TaskRetried(film.film_id, report.task_id, report.error, tries.started + 1, culprit,
                        time=led.now, failure=failure)]


def failure_of(report: TaskReport) -> FailureKind:
    """The kind the executor gave a failed report; without one, a report that names lost
    keys lost its input, and any other is an error."""
    if report.failure is not None:
        return report.failure
    return FailureKind.INPUT_LOST if report.lost_keys else FailureKind.ERROR


def _slot(scene: SceneState, unit: UnitState | None, run: RunningTask) -> tuple[Tries, str]:
    if run.kind is TaskKind.PREPARE:
        return scene.slot(run.kind), f"prompt encoding of scene {scene.scene_id}"
    if run.kind is TaskKind.IMAGE:
        return scene.slot(run.kind), f"image encoding of scene {scene.scene_id}"
    assert unit is not None
    if run.kind is TaskKind.PHASE and run.phase_index is not None:
        return unit.slot(run.kind, run.phase_index), f"phase {run.phase_index} of {unit.plan.id}"
    return unit.slot(run.kind), f"decode of {unit.plan.id}"


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
    for film in led.films.values():
        if film.state.is_final:
            continue
        for scene in film.scenes:
            if scene.prompt_key == key:
                scene.prompt_key = None
            if scene.image_key == key:
                scene.image_key = None
            for unit in scene.units:
                if key in unit.latest.values() or key == unit.condition_key:
                    reset_unit(led, film, scene, unit)


def reset_unit(led: Ledger, film: FilmRecord, scene: SceneState, unit: UnitState) -> None:
    """Back to initial noise; frames already delivered stay delivered (same values).

    A chain unit (or a scene's first, started from another scene) also needs its
    predecessor's conditioning; when that was already freed, the predecessor is recomputed
    too. A task still running for the unit is cancelled.
    """
    if (edge := edges.before(film, unit)) is not None:
        prev_scene, prev = edge
        if prev.condition_key is None and prev.decoded:
            reset_unit(led, film, prev_scene, prev)
    if unit.phases_done == 0 and not unit.decoded and unit.running is None:
        return  # nothing to roll back
    film.phases_done -= unit.phases_done
    for key in list(unit.latest.values()) + ([unit.condition_key] if unit.condition_key else []):
        led.free(key)
    if unit.running is not None:
        led.cancelled.append(unit.running)
        unit.running = None
    unit.phases_done, unit.decoded, unit.condition_key = 0, False, None
    unit.epoch += 1
    unit.latest.clear()
    unit.location.clear()


def check_starved(led: Ledger, film: FilmRecord, need: str) -> list[Event]:
    """No usable worker serves `need`: fail the film if exclusions caused it."""
    holders = [w for w in led.workers.values() if w.alive and w.serves(need, film.model)]
    if holders and all(w.spec.worker_id in film.excluded for w in holders):
        names = ", ".join(sorted(w.spec.worker_id for w in holders))
        last = f"; last error: {film.last_error}" if film.last_error else ""
        return finish_film(led, film, FilmState.FAILED, f"every worker holding {need!r} was "
                           f"excluded after repeated failures ({names}){last}",
                           FailureKind.EXCLUDED)
    return []


def finish_film(led: Ledger, film: FilmRecord, state: FilmState, reason: str,
                failure: FailureKind | None = None) -> list[Event]:
    """End a film; `failure` says why one FAILED or was CANCELLED."""
    if film.state.is_final:
        return []  # a film ends once (e.g. two starved needs in one round)
    film.state, film.reason = state, reason
    for tid, run in led.running.items():
        if run.film_id == film.film_id:
            led.cancelled.append(tid)
    for scene in film.scenes:
        for key in (scene.prompt_key, scene.image_key):
            if key:
                led.free(key)
        scene.prompt_key = scene.image_key = None
        for unit in scene.units:
            condition = [unit.condition_key] if unit.condition_key else []
            for key in list(unit.latest.values()) + condition:
                led.free(key)
            unit.latest.clear()
            unit.condition_key = None
    return [FilmStateChanged(film.film_id, state, reason, time=led.now, failure=failure)]
