"""Live progress and the end-of-render summary, fed by scheduler events and frames."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from farm.sched.output import FramesDecoded, PhaseFinished
from farm.spec.film import Film


@dataclass
class RenderStats:
    """Per-scene compute seconds and seconds per step per expert, from events."""

    film: Film
    started: float = field(default_factory=time.monotonic)
    first_frame: float | None = None
    finished: float | None = None
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # (scene, expert index) -> [seconds, segment-steps]
    expert: dict[tuple[str, int], list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0.0, 0]))

    def on_events(self, events: list) -> None:
        """Scheduler events (inline) or director FilmEvents (cluster)."""
        for e in events:
            kind = getattr(e, "kind", "")
            if kind == "phase":  # a FilmEvent from the director
                self.seconds[e.scene_id] += e.duration
                acc = self.expert[(e.scene_id, self.film.profile.experts.index(e.expert))]
                acc[0] += e.duration
                acc[1] += e.num_steps
            elif kind == "frames":
                self.seconds[e.scene_id] += e.duration
            elif isinstance(e, PhaseFinished):
                scene = e.unit_id.split("/", 1)[0]
                self.seconds[scene] += e.duration
                acc = self.expert[(scene, e.expert)]
                acc[0] += e.duration
                acc[1] += e.num_steps
            elif isinstance(e, FramesDecoded):
                self.seconds[e.scene_id] += e.duration

    def on_frame(self) -> None:
        if self.first_frame is None:
            self.first_frame = time.monotonic()

    @property
    def ttff(self) -> float | None:
        return None if self.first_frame is None else self.first_frame - self.started

    def table(self) -> Table:
        experts = self.film.profile.experts
        t = Table(title=f"{self.film.title}: {self.film.num_frames} frames, "
                        f"{self.film.profile.family}, {self.film.num_steps} steps")
        t.add_column("scene")
        t.add_column("frames", justify="right")
        t.add_column("seconds", justify="right")
        for e in experts:
            t.add_column(f"s/step {e}", justify="right")
        for s in self.film.scenes:
            per = []
            for k in range(len(experts)):
                secs, steps = self.expert.get((s.id, k), (0.0, 0))
                per.append(f"{secs / steps:.4f}" if steps else "-")
            t.add_row(s.id, str(s.num_frames), f"{self.seconds.get(s.id, 0.0):.2f}", *per)
        return t

    def footer(self) -> str:
        wall = (self.finished or time.monotonic()) - self.started
        ttff = f"{self.ttff:.2f} s" if self.ttff is not None else "-"
        return f"time to first frame {ttff}, total {wall:.2f} s"


class LiveProgress:
    """Two bars (denoise phases, frames delivered) plus time to first frame."""

    def __init__(self, console: Console, phases_total: int, frames_total: int):
        self.progress = Progress(TextColumn("{task.description:<10}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                                 TimeElapsedColumn(), console=console, transient=False)
        self.phases = self.progress.add_task("denoise", total=phases_total, note="phases")
        self.frames = self.progress.add_task("frames", total=frames_total, note="")

    def __enter__(self) -> LiveProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def on_events(self, events: list) -> None:
        for e in events:
            if isinstance(e, PhaseFinished) or getattr(e, "kind", "") == "phase":
                self.progress.advance(self.phases, 1)

    def on_frame(self, stats: RenderStats) -> None:
        note = f"first frame after {stats.ttff:.2f} s" if stats.ttff is not None else ""
        self.progress.update(self.frames, advance=1, note=note)
