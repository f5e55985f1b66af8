"""The scheduler: a pure state machine (no clocks, threads, I/O, torch or Ray).

    add_film / add_worker / cancel_film ...      (commands, return events)
    schedule(now) -> SchedulerOutput             (what to start now)
    update_from_output(reports) -> events        (what finished: the executor's output)

NOTE on the algorithm: there is no "high-noise stage" or "decode stage" in the scheduler.
Each unit (one segment, or a gang of windows) has `phases_done` catching up with the
film's phases; its next phase names its expert, and workers advertise which experts
they hold. A unit whose denoising is done is decoded, in frame order per scene. Every
round offers each film, best-ranked first (farm.sched.fairness: priority, then fair
share between tenants and films, then admission order), one of its ready tasks in
playback order (earlier frames first), then re-ranks it; so while segment k sits in the
low-noise pool, segment k+1 runs in the high-noise pool, and the first frames of a film
come out as early as its first unit allows. A round runs twice (farm.sched.choice): first
only onto workers that need no expert switch, then with switches (so a later segment
that fits a warm worker may go before an earlier one that would switch it: GPU-seconds
before first frames). Placement (locality, balance between pools, gangs all-or-nothing)
is in farm.sched.placement; how many GPUs one segment's phase gets (gangs inside a
segment, CFG / sequence parallel) in farm.sched.gangs. The bookkeeping is one Ledger
(farm.sched.state) that this class owns and lends to farm.sched.tasks (ready tasks,
starting them) and farm.sched.reports (what a report changes, failures, data loss).

Executors must report every task they were given exactly once, including tasks named in
`cancelled_task_ids` (ok=False is fine): slots are freed by reports.
"""

from __future__ import annotations

from collections.abc import Iterable

from farm.plan.adapters import AdapterSet
from farm.plan.continuity import dependants
from farm.plan.film import FilmPlan
from farm.sched import choice, gangs, resumed, tasks
from farm.sched.adapters import Loads
from farm.sched.config import SchedulerConfig
from farm.sched.fairness import FairShare, check_priority
from farm.sched.output import (
    DecodeTask,
    Event,
    FailureKind,
    FilmProgress,
    FilmState,
    FilmStateChanged,
    ImageTask,
    Layout,
    PhaseTask,
    PoolStats,
    PrepareTask,
    SchedulerOutput,
    TaskKind,
    TaskReport,
    UnitResume,
    WorkerSpec,
)
from farm.sched.placement import SHARDS, Need, Round
from farm.sched.reports import apply_report, check_starved, finish_film, invalidate_key, reset_unit
from farm.sched.state import FilmRecord, Ledger, SceneState, UnitState, WorkerState


class Scheduler:
    def __init__(self, config: SchedulerConfig | None = None):
        self.config = config or SchedulerConfig()
        self._ledger = Ledger()
        self._fair = FairShare(self.config.tenant_weight, self.config.film_order)
        # Events raised while scheduling (a film starts RUNNING, or fails for want of
        # workers), returned by the next update_from_output.
        self._pending: list[Event] = []
        self._seq = 0

    # ---- fleet -------------------------------------------------------------------------

    def add_worker(self, spec: WorkerSpec) -> None:
        """Add a worker, or replace the spec of a known one (e.g. back after a restart)."""
        if spec.slots < 1:
            raise ValueError(f"worker {spec.worker_id!r}: slots must be >= 1, got {spec.slots}")
        old = self._ledger.workers.get(spec.worker_id)
        w = WorkerState(spec, busy=old.busy if old else 0,
                        warm=old.warm if old and old.alive else None)
        if old and old.alive:  # the same process: its adapter cache stays (new budget)
            w.adapters.held = old.adapters.held
        self._ledger.workers[spec.worker_id] = w

    def drain_worker(self, worker_id: str) -> None:
        """The worker is leaving: nothing new is placed on it; what runs there finishes."""
        w = self._ledger.workers.get(worker_id)
        if w is not None:
            w.draining = True

    def remove_worker(self, worker_id: str, data_lost: bool = False) -> list[Event]:
        """A worker disappeared: its running tasks fail (their units go back to the queue
        from their last completed phase, without using an attempt); with data_lost its
        keys are gone too. A gang's members on other workers are cancelled and their
        slots freed now, so the executor must stop them (a gang cannot finish without a
        member anyway); their late reports are ignored."""
        led = self._ledger
        w = led.workers.get(worker_id)
        if w is None or not w.alive:
            return []
        w.alive = False
        lost = [TaskReport(tid, ok=False, error=f"worker {worker_id} lost", worker_id=worker_id,
                           failure=FailureKind.WORKER_LOST)
                for tid, run in led.running.items() if worker_id in run.worker_ids]
        led.cancelled += [r.task_id for r in lost]
        events = self._apply_reports(lost)
        if data_lost:
            for key in [k for k, home in led.key_home.items() if home == worker_id]:
                invalidate_key(led, key)
        return events

    def workers(self) -> tuple[WorkerState, ...]:
        return tuple(self._ledger.workers.values())

    # ---- films -------------------------------------------------------------------------

    def add_film(self, film_id: str, plan: FilmPlan, *, priority: int = 50,
                 tenant: str = "default", weight: float = 1.0,
                 resume: tuple[UnitResume, ...] = ()) -> list[Event]:
        """Admit a film; `resume` says where units stand (restart): they continue from
        their last completed phase, and decoded units are not decoded again."""
        if film_id in self._ledger.films:
            raise ValueError(f"film {film_id!r} already exists")
        check_priority(priority)
        if not weight > 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        scenes = [SceneState(sp.scene.id, i, [UnitState(unit) for unit in sp.units],
                             has_image=sp.scene.has_inputs)
                  for i, sp in enumerate(plan.scenes)]
        self._seq += 1
        film = FilmRecord(film_id, plan, tenant, priority, weight, self._seq, scenes)
        resumed.apply(film, resume)
        self._fair.activate(film, self._active())
        self._ledger.films[film_id] = film
        if resumed.all_decoded(film):
            return [FilmStateChanged(film_id, FilmState.QUEUED, time=self._ledger.now)] + \
                finish_film(self._ledger, film, FilmState.SUCCEEDED, "")
        return [FilmStateChanged(film_id, FilmState.QUEUED, time=self._ledger.now)]

    def rerender(self, film_id: str, unit_ids: tuple[str, ...]) -> list[Event]:
        """Compute these units again from initial noise and deliver their frames again;
        a finished film reopens. Running work of the units is cancelled. Units that come
        after them (a chain's later clips, a scene that starts from theirs) render again
        too, and the reason names them."""
        film = self._film(film_id)
        extra = dependants(film.plan, unit_ids)
        units = resumed.units_by_id(film, unit_ids + extra)
        for scene, unit in units:
            reset_unit(self._ledger, film, scene, unit)
            scene.frames_done = min(scene.frames_done, unit.plan.frame_start)
        return self._reopen(film, "re-render" + (f"; dependants re-rendered too: "
                                                 f"{', '.join(extra)}" if extra else ""))

    def retry_film(self, film_id: str) -> list[Event]:
        """A FAILED film gets fresh attempts (and no excluded workers); done work stays."""
        film = self._film(film_id)
        if film.state != FilmState.FAILED:
            raise ValueError(f"film {film_id!r} is {film.state.value}, not FAILED")
        resumed.clear_failures(film)
        return self._reopen(film, "retry")

    def forget_film(self, film_id: str) -> None:
        """Drop a finished film with nothing running (the director keeps its record)."""
        film = self._film(film_id)
        if not film.state.is_final or any(r.film_id == film_id
                                          for r in self._ledger.running.values()):
            raise ValueError(f"film {film_id!r} is not finished")
        del self._ledger.films[film_id]

    def _reopen(self, film: FilmRecord, why: str) -> list[Event]:
        if not film.state.is_final:
            return []
        film.state, film.reason = FilmState.RUNNING, ""
        self._fair.activate(film, self._active())
        return [FilmStateChanged(film.film_id, FilmState.RUNNING, why, time=self._ledger.now)]

    def cancel_film(self, film_id: str, reason: str = "cancelled by user") -> list[Event]:
        film = self._film(film_id)
        if film.state.is_final:
            return []
        return finish_film(self._ledger, film, FilmState.CANCELLED, reason, FailureKind.CANCELLED)

    def pause_film(self, film_id: str) -> list[Event]:
        """Stop handing out this film's work; running phases finish (phase boundary)."""
        film = self._film(film_id)
        if film.state.is_final or film.state == FilmState.PAUSED:
            return []
        film.state = FilmState.PAUSED
        return [FilmStateChanged(film_id, FilmState.PAUSED, time=self._ledger.now)]

    def resume_film(self, film_id: str) -> list[Event]:
        film = self._film(film_id)
        if film.state != FilmState.PAUSED:
            return []
        self._fair.activate(film, self._active())  # no catch-up burst after a long pause
        film.state = FilmState.RUNNING if film.started else FilmState.QUEUED
        return [FilmStateChanged(film_id, film.state, time=self._ledger.now)]

    def set_priority(self, film_id: str, priority: int) -> None:
        check_priority(priority)
        self._film(film_id).priority = priority

    def progress(self, film_id: str) -> FilmProgress:
        film = self._film(film_id)
        return FilmProgress(film_id, film.state, film.phases_done, film.phases_total,
                            film.frames_done, film.frames_total, film.reason,
                            tuple(sorted(film.excluded)))

    def pool_stats(self) -> tuple[PoolStats, ...]:
        """Queue depth and occupancy per pool (pure bookkeeping, for metrics)."""
        pools: dict[str, list[WorkerState]] = {}
        for w in self._ledger.workers.values():
            if w.alive:
                pools.setdefault(w.spec.pool or w.spec.worker_id, []).append(w)
        ready = [(film, need) for film in self._active()
                 for need, _, _ in (tasks.requirements(film, c) for c in tasks.candidates(film))]
        running = [(r, self._ledger.films.get(r.film_id)) for r in self._ledger.running.values()
                   if r.kind is TaskKind.PHASE]
        out = []
        for name, ws in sorted(pools.items()):
            ids = {w.spec.worker_id for w in ws}
            queued = sum(1 for film, (part, model) in ready
                         if part in film.plan.film.profile.experts
                         and any(w.serves(part, model) for w in ws))
            busy = sum(1 for r, _ in running if ids & set(r.worker_ids))
            out.append(PoolStats(name, queued, busy, len(ws), sum(w.spec.slots for w in ws),
                                 sum(min(w.busy, w.spec.slots) for w in ws)))
        return tuple(out)

    def film_ids(self) -> tuple[str, ...]:
        return tuple(self._ledger.films)

    def has_unfinished_films(self) -> bool:
        return any(not film.state.is_final for film in self._ledger.films.values())

    def num_running_tasks(self) -> int:
        return len(self._ledger.running)

    # ---- the two calls of every engine step ----------------------------------------------

    def schedule(self, now: float) -> SchedulerOutput:
        """Hand out as much work as fits, best-ranked film first (see module NOTE)."""
        self._ledger.now = now
        cands = {film.film_id: tasks.candidates(film) for film in self._active()}
        reqs = {fid: [tasks.requirements(self._ledger.films[fid], c) for c in cs]
                for fid, cs in cands.items()}
        demand: dict[Need, int] = {}
        for rs in reqs.values():
            for need, num, _ in rs:
                demand[need] = demand.get(need, 0) + num
        round_ = Round(self._ledger.workers.values(), demand, self._short_busy(),
                       affinity=self.config.adapter_affinity,
                       shard_gangs=self._ledger.open_shard_gangs())
        for r in self._ledger.running.values():
            if r.active is not None:
                round_.note_active(r.worker_ids, Need(*r.active[0]), r.active[1])
        self._fail_starved(cands, reqs, round_)
        round_.decodes = choice.ready_decodes(
            (c.kind, r[0]) for fid in cands for c, r in zip(cands[fid], reqs[fid], strict=True))
        started: list[tasks.Task] = []
        films = self._ledger.films
        choice.run_round(  # a warm pass, then a switching pass (farm.sched.choice)
            round_, list(cands), rank=lambda fid: self._fair.rank(films[fid]),
            place=lambda fid: self._place_one(films[fid], cands[fid], reqs[fid], round_, started),
            has_work=lambda fid: bool(cands[fid]))
        return self._output(started)

    def update_from_output(self, reports: Iterable[TaskReport]) -> list[Event]:
        """Apply the executor's output: the reports of tasks it finished (in any order,
        each once; reports of tasks written off are ignored)."""
        events, self._pending = self._pending, []
        return events + self._apply_reports(reports)

    # ---- internals ---------------------------------------------------------------------

    def _film(self, film_id: str) -> FilmRecord:
        try:
            return self._ledger.films[film_id]
        except KeyError:
            raise KeyError(f"unknown film {film_id!r}") from None

    def _active(self) -> list[FilmRecord]:
        return [film for film in self._ledger.films.values() if film.schedulable]

    def _short_busy(self) -> frozenset[str]:
        """Workers whose running tasks are all short (prompt, image, decode)."""
        running = self._ledger.running.values()
        short = {w for r in running if r.kind is not TaskKind.PHASE for w in r.worker_ids}
        long = {w for r in running if r.kind is TaskKind.PHASE for w in r.worker_ids}
        return frozenset(short - long)

    def _fail_starved(self, cands: dict[str, list], reqs: dict[str, list], round_: Round) -> None:
        """Fail films whose work no usable worker serves, before anything is placed: a
        film ending mid-round would free the inputs of tasks it was just given."""
        for fid in list(cands):
            film = self._ledger.films[fid]
            excluded = frozenset(film.excluded)
            for need in dict.fromkeys(need for need, _, _ in reqs[fid]):  # ordered
                if not round_.pool(need, excluded):
                    self._pending += check_starved(self._ledger, film, need[0])
            if not film.schedulable:
                del cands[fid], reqs[fid]

    def _place_one(self, film: FilmRecord, cands: list[tasks.Candidate], reqs: list,
                   round_: Round, started: list[tasks.Task]) -> bool:
        """Start the film's first candidate (playback order) that fits; False if none."""
        excluded = frozenset(film.excluded)
        for i, (cand, (need, num, preferred)) in enumerate(zip(cands, reqs, strict=True)):
            is_phase = cand.kind is TaskKind.PHASE
            layout, gang, adapters, key = None, "", (), ()
            if is_phase:
                assert cand.unit is not None
                adapters = film.plan.adapters(cand.scene.scene_id, cand.unit.phases_done)
                key = film.plan.adapter_key(cand.scene.scene_id, cand.unit.phases_done)
                round_.adapters, round_.adapter_key = adapters, key
                placed = gangs.place_phase(round_, self.config.gangs, need, excluded, preferred,
                                           family=film.plan.film.profile.family,
                                           height=film.plan.film.height,
                                           guidance=tasks.phase_guidance(film, cand),
                                           previous=cand.unit.gang if cand.unit else None,
                                           key=f"{film.film_id}/{cand.unit.plan.id}"
                                           if cand.unit else "")
                round_.adapters, round_.adapter_key = (), None
                ids, layout, gang = placed if placed is not None else (None, None, "")
            else:
                ids = round_.place(need, excluded, num, preferred, backfill=True)
                if (ids is not None and cand.kind is TaskKind.DECODE
                        and self.config.gangs is not None):
                    ids += gangs.band_ranks(round_, need, excluded | {ids[0]},
                                            tasks.decode_bands_of(film) - 1)
            if ids is None:
                if is_phase and num > 1:
                    round_.reserve(need, excluded)
                continue
            if is_phase:
                assert cand.unit is not None
                self._fair.charge(film, tasks.phase_work(film, cand.unit))
            task = tasks.start(self._ledger, film, cand, ids, layout, gang,
                               self._load_adapters(ids, adapters) if is_phase else ())
            started.append(task)
            if is_phase:
                round_.note_active(ids, need, key)
                for wid in ids:
                    self._note_phase(self._ledger.workers[wid], need, layout, task.gang_key)
            del cands[i], reqs[i]
            if film.state == FilmState.QUEUED:
                film.state = FilmState.RUNNING
                self._pending.append(FilmStateChanged(film.film_id, FilmState.RUNNING,
                                                      time=self._ledger.now))
            return True
        return False

    @staticmethod
    def _note_phase(w: WorkerState, need: Need, layout: Layout | None, gang: str) -> None:
        """What a worker holds once a phase starts there: the phase's expert, and the
        gang its runtime keeps open. Under offload "shard" a gang's ranks hold shards of
        every expert with the gang (no whole expert), and a one-GPU phase brings its whole
        expert in, for which the shards make room (farm.model.shard)."""
        ganged = layout is not None and layout.size > 1
        shard = w.spec.offload == "shard"
        w.warm = Need(SHARDS, need.model) if ganged and shard else need
        if ganged:
            w.gang = gang
        elif shard:
            w.gang = None

    def _load_adapters(self, ids: tuple[str, ...], adapters: AdapterSet) -> tuple[Loads, ...]:
        """A phase's adapters go through each of its workers' caches (the mirror of
        farm.sched.adapters): what each loads."""
        return tuple(self._ledger.workers[wid].adapters.use(adapters) for wid in dict.fromkeys(ids))

    def _output(self, started: list[tasks.Task]) -> SchedulerOutput:
        freed, cancelled = self._ledger.take_housekeeping()
        return SchedulerOutput(
            prepares=tuple(t for t in started if isinstance(t, PrepareTask)),
            images=tuple(t for t in started if isinstance(t, ImageTask)),
            phases=tuple(t for t in started if isinstance(t, PhaseTask)),
            decodes=tuple(t for t in started if isinstance(t, DecodeTask)),
            freed_keys=freed, cancelled_task_ids=cancelled)

    def _apply_reports(self, reports: Iterable[TaskReport]) -> list[Event]:
        led = self._ledger
        events: list[Event] = []
        for report in reports:
            run = led.running.pop(report.task_id, None)
            if run is None:
                continue  # unknown or already handled (e.g. reported after worker loss)
            for wid in run.worker_ids:
                if wid in led.workers:
                    led.workers[wid].busy -= 1
            events += apply_report(led, self.config, run, report)
        return events

