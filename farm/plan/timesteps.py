"""Solver timesteps and the split of steps between experts (pure numpy).

Wan2.2 A14B routes by timestep: the high-noise expert runs while t >= boundary * 1000,
the low-noise expert afterwards. With the official settings at 40 steps this gives
26 high : 14 low for T2V (shift 12, boundary 0.875) and 15 : 25 for I2V (shift 5,
boundary 0.9). The arithmetic mirrors diffusers' UniPCMultistepScheduler
(`use_flow_sigmas=True`) and FlowMatchEulerDiscreteScheduler; a model-tier test checks
that both agree with the real schedulers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_TRAIN_TIMESTEPS = 1000


@dataclass(frozen=True, slots=True)
class Phase:
    """A run of consecutive steps on one expert: steps [start, stop)."""

    # Index of the expert in the profile's expert tuple (0 = highest noise).
    expert: int
    start: int
    stop: int

    @property
    def num_steps(self) -> int:
        return self.stop - self.start


def _shift(sigmas: np.ndarray, shift: float) -> np.ndarray:
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def timesteps(solver: str, num_steps: int, shift: float) -> tuple[float, ...]:
    """The timesteps a diffusers scheduler of this kind visits, highest first."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    n = NUM_TRAIN_TIMESTEPS
    if solver == "unipc":
        sigmas = _shift(np.linspace(1, 1 / n, num_steps + 1)[:-1], shift)
        if abs(sigmas[0] - 1) < 1e-6:
            sigmas[0] -= 1e-6
        return tuple(float(t) for t in (sigmas * n).astype(np.int64))
    if solver == "euler":
        train = _shift(np.linspace(1, n, n, dtype=np.float32)[::-1] / n, shift)
        ts = np.linspace(float(train[0]) * n, float(train[-1]) * n, num_steps) / n
        return tuple(float(t) for t in _shift(ts, shift) * n)
    raise ValueError(f"unknown solver {solver!r}; allowed: unipc, euler")


def expert_of_timestep(t: float, boundaries: tuple[float, ...]) -> int:
    """Index of the expert that owns timestep t (boundaries descending)."""
    return sum(1 for b in boundaries if t < b * NUM_TRAIN_TIMESTEPS)


def phases(steps: tuple[float, ...], boundaries: tuple[float, ...],
           max_steps: int | None = None) -> tuple[Phase, ...]:
    """Group consecutive steps by expert. Experts without steps get no phase.

    `max_steps`: split each expert's run into near-equal phases of at most that many
    steps. The solver state is handed over exactly at any step, so the result is the
    same; the scheduler gets a decision point (where, on how many GPUs) every chunk."""
    out: list[Phase] = []
    for i, t in enumerate(steps):
        e = expert_of_timestep(t, boundaries)
        if out and out[-1].expert == e:
            out[-1] = Phase(e, out[-1].start, i + 1)
        else:
            out.append(Phase(e, i, i + 1))
    if max_steps is None:
        return tuple(out)
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    return tuple(chunk for p in out for chunk in _chunks(p, max_steps))


def _chunks(p: Phase, max_steps: int) -> list[Phase]:
    n = -(-p.num_steps // max_steps)  # ceil
    bounds = [p.start + round(k * p.num_steps / n) for k in range(n + 1)]
    return [Phase(p.expert, a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
