"""EngineCore: schedule, execute, update. The only loop; no policy of its own."""

from __future__ import annotations

import time
from collections.abc import Callable

from farm.engine.executor import Executor
from farm.plan.film import FilmPlan
from farm.sched.output import Event, FilmState, SchedulerOutput, WorkerSpec
from farm.sched.scheduler import Scheduler


class EngineStalled(RuntimeError):
    """Unfinished films, nothing running, nothing schedulable (e.g. no worker holds an expert)."""


class EngineCore:
    def __init__(self, scheduler: Scheduler, executor: Executor,
                 clock: Callable[[], float] = time.monotonic, poll_interval: float = 0.05,
                 wait_for_workers: bool = False):
        """`wait_for_workers`: a fleet that can grow (a cluster) waits for a worker that
        holds what the films need instead of declaring them stalled."""
        self.wait_for_workers = wait_for_workers
        # Wall time of the latest schedule() call (a metric of the scheduler's cost).
        self.last_decision_seconds = 0.0
        self.scheduler = scheduler
        self.executor = executor
        self.clock = clock
        self.poll_interval = poll_interval
        # Called with every non-empty schedule before the executor gets it (monitors look
        # at the fleet then: an in-process executor computes inside submit()).
        self.on_dispatch: Callable[[SchedulerOutput], None] | None = None

    def add_worker(self, spec: WorkerSpec) -> None:
        self.scheduler.add_worker(spec)

    def add_film(self, film_id: str, plan: FilmPlan, **kwargs: object) -> list[Event]:
        self.executor.add_film(film_id, plan)
        return self.scheduler.add_film(film_id, plan, **kwargs)  # type: ignore[arg-type]

    def step(self) -> list[Event]:
        """Apply fleet changes, schedule what fits, execute, apply whatever finished."""
        events = self.apply_fleet()
        started = self.clock()
        output = self.scheduler.schedule(started)
        self.last_decision_seconds = self.clock() - started
        if not output.is_empty:
            if self.on_dispatch is not None:
                self.on_dispatch(output)
            self.executor.submit(output)
        busy = self.scheduler.num_running_tasks() > 0
        reports = self.executor.poll(self.poll_interval if busy else 0.0)
        events += self.scheduler.update_from_output(reports)
        if not events and output.num_tasks == 0 and not busy and self._stalled():
            if self.wait_for_workers:
                return events
            raise EngineStalled(self._stall_reason())
        return events

    def apply_fleet(self) -> list[Event]:
        """Workers that joined, are leaving, left or were lost, into the scheduler (every
        step; the director also calls it while it has no film, so the fleet stays known)."""
        change = self.executor.fleet()
        for spec in change.added:
            self.scheduler.add_worker(spec)
        events: list[Event] = []
        for worker_id in change.draining:
            self.scheduler.drain_worker(worker_id)
        for worker_id in change.removed:
            events += self.scheduler.remove_worker(worker_id, data_lost=True)
        for worker_id in change.left:
            events += self.scheduler.remove_worker(worker_id, data_lost=False)
        return events

    def run(self, on_events: Callable[[list[Event]], None] | None = None) -> None:
        """Step until every film is finished."""
        while self.scheduler.has_unfinished_films():
            events = self.step()
            if events and on_events is not None:
                on_events(events)

    def _stalled(self) -> bool:
        states = [self.scheduler.progress(f).state for f in self.scheduler.film_ids()]
        waiting = [s for s in states if s in (FilmState.QUEUED, FilmState.RUNNING)]
        return bool(waiting)

    def _stall_reason(self) -> str:
        holds = sorted({h for w in self.scheduler.workers() if w.alive for h in w.spec.holds})
        return ("no worker can run the remaining work of the unfinished films; "
                f"workers hold: {', '.join(holds) or 'nothing'}")
