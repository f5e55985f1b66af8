"""What a simulation run returns: per-film times and per-pool busy time (frozen values)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FilmResult:
    film_id: str
    arrival: float
    # When the film's first frame reached the viewer (None if never).
    first_frame: float | None
    # When the film ended, and how ("SUCCEEDED", "FAILED", ..., "UNFINISHED").
    done: float | None
    state: str

    @property
    def latency(self) -> float | None:
        return None if self.done is None else self.done - self.arrival

    @property
    def ttff(self) -> float | None:
        return None if self.first_frame is None else self.first_frame - self.arrival


@dataclass(frozen=True, slots=True)
class SimResult:
    films: tuple[FilmResult, ...]
    # pool -> number of GPUs, and GPU-seconds they were busy.
    pool_gpus: dict[str, int]
    pool_busy_s: dict[str, float]
    # GPU-seconds of denoising compute handed out (no transfers), for conservation checks.
    phase_gpu_s: float
    num_failures: int = 0
    # Free-form description of the configuration (e.g. the official group size).
    note: str = ""
    # Phases (gangs) that waited for an expert switch on some rank, of all phases.
    switched_phases: int = 0
    phases: int = 0
    # LoRA adapter files loaded onto workers before phases (PhaseTask.adapter_loads).
    adapter_loads: int = 0

    @property
    def makespan(self) -> float:
        return max((f.done for f in self.films if f.done is not None), default=0.0)

    @property
    def gpus(self) -> int:
        return sum(self.pool_gpus.values())

    def utilisation(self) -> dict[str, float]:
        """Busy fraction per pool over the makespan, and "all"."""
        span = self.makespan or 1.0
        out = {p: self.pool_busy_s[p] / (n * span) for p, n in self.pool_gpus.items()}
        out["all"] = sum(self.pool_busy_s.values()) / (self.gpus * span)
        return out
