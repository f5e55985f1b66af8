"""The scheduler: a pure state machine (no clocks, threads, I/O, torch or Ray).

    add_film / add_worker / cancel_film ...      (commands, return events)
    schedule(now) -> SchedulerOutput             (what to start now)
    update_from_output(output, reports) -> events (what finished)

NOTE on the algorithm: there is no "high-noise stage" or "decode stage" in the scheduler.
Each unit (one segment, or a gang of windows) has `phases_done` catching up with the
film's phases; its next phase names its expert, and workers advertise which experts
they hold. A unit whose denoising is done is decoded, in frame order per scene. Every
round offers each film, best-ranked first (farm.sched.fairness: priority, then fair
share between tenants and films, then admission order), one of its ready tasks in
playback order (earlier frames first), then re-ranks it; so while segment k sits in the
low-noise pool, segment k+1 runs in the high-noise pool, and the first frames of a film
come out as early as its first unit allows. Placement (locality, balance between pools,
gangs all-or-nothing) is in farm.sched.placement; how many GPUs one segment's phase gets
(gangs inside a segment, CFG / sequence parallel) in farm.sched.gangs; failures in
farm.sched.reports.

Executors must report every task they were given exactly once, including tasks named in
`cancelled_task_ids` (ok=False is fine): slots are freed by reports.
"""

from __future__ import annotations

import heapq

from farm.plan.film import FilmPlan
from farm.sched import gangs, reports, resumed, tasks
from farm.sched.config import SchedulerConfig
from farm.sched.fairness import FairShare
from farm.sched.output import (
    DecodeTask,
    Event,
    FilmProgress,
    FilmState,
    FilmStateChanged,
    ImageTask,
    PhaseTask,
    PoolStats,
    PrepareTask,
    SchedulerOutput,
    TaskReport,
    UnitResume,
    WorkerSpec,
)
from farm.sched.placement import Need, Round
from farm.sched.state import FilmRecord, RunningTask, SceneState, UnitState, WorkerState


class Scheduler:
    def __init__(self, config: SchedulerConfig | None = None):
        self.config = config or SchedulerConfig()
        self._films: dict[str, FilmRecord] = {}
        self._workers: dict[str, WorkerState] = {}
        self._running: dict[str, RunningTask] = {}
        self._fair = FairShare(self.config.tenant_weight)
        # key -> worker that holds it (for locality and for data lost with a worker)
        self._key_home: dict[str, str] = {}
        self._freed: list[str] = []
        self._cancelled: list[str] = []
        self._pending: list[Event] = []
        self._seq = 0
        self._now = 0.0

    # ---- fleet -------------------------------------------------------------------------

    def add_worker(self, spec: WorkerSpec) -> None:
        """Add a worker, or replace the spec of a known one (e.g. back after a restart)."""
        if spec.slots < 1:
            raise ValueError(f"worker {spec.worker_id!r}: slots must be >= 1, got {spec.slots}")
        old = self._workers.get(spec.worker_id)
        self._workers[spec.worker_id] = WorkerState(spec, busy=old.busy if old else 0,
                                                    warm=old.warm if old and old.alive else None)

    def remove_worker(self, worker_id: str, data_lost: bool = False) -> list[Event]:
        """A worker disappeared: its running tasks fail (their units go back to the queue
        from their last completed phase, without using an attempt); with data_lost its
        keys are gone too. A gang's members on other workers are cancelled and their
        slots freed now, so the executor must stop them (a gang cannot finish without a
        member anyway); their late reports are ignored."""
        w = self._workers.get(worker_id)
        if w is None or not w.alive:
            return []
        w.alive = False
        lost = [TaskReport(tid, ok=False, error=f"worker {worker_id} lost", worker_id=worker_id,
                           worker_lost=True)
                for tid, run in self._running.items() if worker_id in run.worker_ids]
        self._cancelled += [r.task_id for r in lost]
        events = self._apply_reports(lost)
        if data_lost:
            for key in [k for k, home in self._key_home.items() if home == worker_id]:
                reports.invalidate_key(self, key)
        return events

    def workers(self) -> tuple[WorkerState, ...]:
        return tuple(self._workers.values())

    # ---- films -------------------------------------------------------------------------

    def add_film(self, film_id: str, plan: FilmPlan, *, priority: int = 50,
                 tenant: str = "default", weight: float = 1.0,
                 resume: tuple[UnitResume, ...] = ()) -> list[Event]:
        """Admit a film; `resume` says where units stand (restart): they continue from
        their last completed phase, and decoded units are not decoded again."""
        if film_id in self._films:
            raise ValueError(f"film {film_id!r} already exists")
        _check_priority(priority)
        if not weight > 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        scenes = [SceneState(sp.scene.id, i, [UnitState(u) for u in sp.units],
                             has_image=sp.scene.has_inputs)
                  for i, sp in enumerate(plan.scenes)]
        self._seq += 1
        f = FilmRecord(film_id, plan, tenant, priority, weight, self._seq, scenes)
        resumed.apply(f, resume)
        self._fair.activate(f, self._active())
        self._films[film_id] = f
        if resumed.all_decoded(f):
            return [FilmStateChanged(film_id, FilmState.QUEUED, time=self._now)] + \
                reports.finish_film(self, f, FilmState.SUCCEEDED, "")
        return [FilmStateChanged(film_id, FilmState.QUEUED, time=self._now)]

    def rerender(self, film_id: str, unit_ids: tuple[str, ...]) -> list[Event]:
        """Compute these units again from initial noise and deliver their frames again;
        a finished film reopens. Running work of the units is cancelled."""
        f = self._film(film_id)
        units = resumed.units_by_id(f, unit_ids)
        for sc, u in units:
            reports.reset_unit(self, f, sc, u)
            sc.frames_done = min(sc.frames_done, u.plan.frame_start)
        return self._reopen(f, "re-render")

    def retry_film(self, film_id: str) -> list[Event]:
        """A FAILED film gets fresh attempts (and no excluded workers); done work stays."""
        f = self._film(film_id)
        if f.state != FilmState.FAILED:
            raise ValueError(f"film {film_id!r} is {f.state.value}, not FAILED")
        resumed.clear_failures(f)
        return self._reopen(f, "retry")

    def forget_film(self, film_id: str) -> None:
        """Drop a finished film with nothing running (the director keeps its record)."""
        f = self._film(film_id)
        if not f.state.is_final or any(r.film_id == film_id for r in self._running.values()):
            raise ValueError(f"film {film_id!r} is not finished")
        del self._films[film_id]

    def _reopen(self, f: FilmRecord, why: str) -> list[Event]:
        if not f.state.is_final:
            return []
        f.state, f.reason = FilmState.RUNNING, ""
        self._fair.activate(f, self._active())
        return [FilmStateChanged(f.film_id, FilmState.RUNNING, why, time=self._now)]

    def cancel_film(self, film_id: str, reason: str = "cancelled by user") -> list[Event]:
        f = self._film(film_id)
        if f.state.is_final:
            return []
        return reports.finish_film(self, f, FilmState.CANCELLED, reason)

    def pause_film(self, film_id: str) -> list[Event]:
        """Stop handing out this film's work; running phases finish (phase boundary)."""
        f = self._film(film_id)
        if f.state.is_final or f.state == FilmState.PAUSED:
            return []
        f.state = FilmState.PAUSED
        return [FilmStateChanged(film_id, FilmState.PAUSED, time=self._now)]

    def resume_film(self, film_id: str) -> list[Event]:
        f = self._film(film_id)
        if f.state != FilmState.PAUSED:
            return []
        self._fair.activate(f, self._active())  # no catch-up burst after a long pause
        f.state = FilmState.RUNNING if f.started else FilmState.QUEUED
        return [FilmStateChanged(film_id, f.state, time=self._now)]

    def set_priority(self, film_id: str, priority: int) -> None:
        _check_priority(priority)
        self._film(film_id).priority = priority

    def progress(self, film_id: str) -> FilmProgress:
        f = self._film(film_id)
        return FilmProgress(film_id, f.state, f.phases_done, f.phases_total, f.frames_done,
                            f.frames_total, f.reason, tuple(sorted(f.excluded)))

    def pool_stats(self) -> tuple[PoolStats, ...]:
        """Queue depth and occupancy per pool (pure bookkeeping, for metrics)."""
        pools: dict[str, list[WorkerState]] = {}
        for w in self._workers.values():
            if w.alive:
                pools.setdefault(w.spec.pool or w.spec.worker_id, []).append(w)
        ready = [(f, need) for f in self._active()
                 for need, _, _ in (tasks.requirements(f, c) for c in tasks.candidates(f))]
        running = [(r, self._films.get(r.film_id)) for r in self._running.values()
                   if r.kind == "phase"]
        out = []
        for name, ws in sorted(pools.items()):
            ids = {w.spec.worker_id for w in ws}
            queued = sum(1 for f, (part, model) in ready if part in f.plan.film.profile.experts
                         and any(w.serves(part, model) for w in ws))
            busy = sum(1 for r, _ in running if ids & set(r.worker_ids))
            out.append(PoolStats(name, queued, busy, len(ws), sum(w.spec.slots for w in ws),
                                 sum(min(w.busy, w.spec.slots) for w in ws)))
        return tuple(out)

    def film_ids(self) -> tuple[str, ...]:
        return tuple(self._films)

    def has_unfinished_films(self) -> bool:
        return any(not f.state.is_final for f in self._films.values())

    def num_running_tasks(self) -> int:
        return len(self._running)

    # ---- the two calls of every engine step ----------------------------------------------

    def schedule(self, now: float) -> SchedulerOutput:
        """Hand out as much work as fits, best-ranked film first (see module NOTE)."""
        self._now = now
        cands = {f.film_id: tasks.candidates(f) for f in self._active()}
        reqs = {fid: [tasks.requirements(self._films[fid], c) for c in cs]
                for fid, cs in cands.items()}
        demand: dict[Need, int] = {}
        for rs in reqs.values():
            for need, num, _ in rs:
                demand[need] = demand.get(need, 0) + num
        rnd = Round(self._workers.values(), demand, self._short_busy())
        self._fail_starved(cands, reqs, rnd)
        started: list[tasks.Task] = []
        heap = [(self._fair.rank(self._films[fid]), fid) for fid, c in cands.items() if c]
        heapq.heapify(heap)
        while heap and rnd.has_free:
            rank, fid = heapq.heappop(heap)
            f = self._films[fid]
            if (now_rank := self._fair.rank(f)) != rank:  # stale after another placement
                heapq.heappush(heap, (now_rank, fid))
                continue
            if self._place_one(f, cands[fid], reqs[fid], rnd, started) and cands[fid]:
                heapq.heappush(heap, (self._fair.rank(f), fid))
        return self._output(started)

    def update_from_output(self, output: SchedulerOutput,
                           reports: list[TaskReport] | tuple[TaskReport, ...]) -> list[Event]:
        """Apply the executor's reports; `output` is the latest schedule() result."""
        events, self._pending = self._pending, []
        return events + self._apply_reports(reports)

    # ---- internals ---------------------------------------------------------------------

    def _film(self, film_id: str) -> FilmRecord:
        try:
            return self._films[film_id]
        except KeyError:
            raise KeyError(f"unknown film {film_id!r}") from None

    def _active(self) -> list[FilmRecord]:
        return [f for f in self._films.values() if f.schedulable]

    def _short_busy(self) -> frozenset[str]:
        """Workers whose running tasks are all short (prompt, image, decode)."""
        short = {w for r in self._running.values() if r.kind != "phase" for w in r.worker_ids}
        long = {w for r in self._running.values() if r.kind == "phase" for w in r.worker_ids}
        return frozenset(short - long)

    def _fail_starved(self, cands: dict[str, list], reqs: dict[str, list], rnd: Round) -> None:
        """Fail films whose work no usable worker serves, before anything is placed: a
        film ending mid-round would free the inputs of tasks it was just given."""
        for fid in list(cands):
            f = self._films[fid]
            excluded = frozenset(f.excluded)
            for need in dict.fromkeys(need for need, _, _ in reqs[fid]):  # ordered
                if not rnd.pool(need, excluded):
                    self._pending += reports.check_starved(self, f, need[0])
            if not f.schedulable:
                del cands[fid], reqs[fid]

    def _place_one(self, f: FilmRecord, cands: list[tasks.Candidate], reqs: list,
                   rnd: Round, started: list[tasks.Task]) -> bool:
        """Start the film's first candidate (playback order) that fits; False if none."""
        excluded = frozenset(f.excluded)
        for i, (cand, (need, num, preferred)) in enumerate(zip(cands, reqs, strict=True)):
            is_phase = cand[0] == "phase"
            layout, gang = None, ""
            if is_phase:
                placed = gangs.place_phase(rnd, self.config.gangs, need, excluded, preferred,
                                           family=f.plan.film.profile.family,
                                           height=f.plan.film.height,
                                           guidance=tasks.phase_guidance(f, cand),
                                           previous=cand[2].gang if cand[2] else None)
                ids, layout, gang = placed if placed is not None else (None, None, "")
            else:
                ids = rnd.place(need, excluded, num, preferred, backfill=True)
                if ids is not None and cand[0] == "decode" and self.config.gangs is not None:
                    ids += gangs.band_ranks(rnd, need, excluded | {ids[0]},
                                            tasks.decode_bands_of(f) - 1)
            if ids is None:
                if is_phase and num > 1:
                    rnd.reserve(need, excluded)
                continue
            task = tasks.start(self, f, cand, ids, layout, gang)
            started.append(task)
            if is_phase:
                for wid in ids:
                    self._workers[wid].warm = need
                    if layout is not None and layout.size > 1:
                        self._workers[wid].gang = task.gang_key
            del cands[i], reqs[i]
            if f.state == FilmState.QUEUED:
                f.state = FilmState.RUNNING
                self._pending.append(FilmStateChanged(f.film_id, FilmState.RUNNING, time=self._now))
            return True
        return False

    def _output(self, started: list[tasks.Task]) -> SchedulerOutput:
        freed, self._freed = tuple(self._freed), []
        cancelled, self._cancelled = tuple(self._cancelled), []
        return SchedulerOutput(
            prepares=tuple(t for t in started if isinstance(t, PrepareTask)),
            images=tuple(t for t in started if isinstance(t, ImageTask)),
            phases=tuple(t for t in started if isinstance(t, PhaseTask)),
            decodes=tuple(t for t in started if isinstance(t, DecodeTask)),
            freed_keys=freed, cancelled_task_ids=cancelled)

    def _apply_reports(self, reps: list[TaskReport] | tuple[TaskReport, ...]) -> list[Event]:
        events: list[Event] = []
        for report in reps:
            run = self._running.pop(report.task_id, None)
            if run is None:
                continue  # unknown or already handled (e.g. reported after worker loss)
            for wid in run.worker_ids:
                if wid in self._workers:
                    self._workers[wid].busy -= 1
            events += reports.apply_report(self, run, report)
        return events


def _check_priority(priority: int) -> None:
    if not 0 <= priority <= 100:
        raise ValueError(f"priority must be in [0, 100], got {priority}")

