"""Estimated time to finish a film, from its observed progress rate (pure: no clock).

    ETA = remaining phases / phase rate - seconds since the last finished phase
          (once every phase is done: remaining frames / frame rate - seconds since the
          last delivered frames)

The rate is measured over the last `window` seconds of the current run (the samples
restart whenever the film starts running again: after a pause, a retry or a re-render,
so a pause never counts as slow progress): (done at the last sample - done at the first
sample of the window) / the time between them; the sample just before the window is the
window's first, so two phases a long time apart still give a rate. Denoising phases are
the bulk of a film's compute, and decoding runs alongside them, so frames only decide
once no phase is left. No estimate (None) without two samples that differ, or while the
film is not running.
"""

from __future__ import annotations

from collections.abc import Sequence

# Seconds of recent progress the rate is measured over.
WINDOW_S = 120.0

Sample = tuple[float, int]  # (time, units done so far)


def rate(samples: Sequence[Sample], window: float = WINDOW_S) -> float | None:
    """Units per second over the last `window` seconds of `samples` (oldest first)."""
    if len(samples) < 2:
        return None
    t_last, d_last = samples[-1]
    first = 0
    for i, (t, _) in enumerate(samples):
        if t >= t_last - window:
            first = max(0, i - 1)
            break
    t_first, d_first = samples[first]
    if t_last <= t_first or d_last <= d_first:
        return None
    return (d_last - d_first) / (t_last - t_first)


def remaining_seconds(remaining: int, samples: Sequence[Sample], now: float,
                      window: float = WINDOW_S) -> float | None:
    """Seconds until `remaining` more units are done at the recent rate, counted from now."""
    if remaining <= 0:
        return 0.0
    r = rate(samples, window)
    if r is None:
        return None
    return max(0.0, remaining / r - (now - samples[-1][0]))


def eta(running: bool, phases_left: int, frames_left: int, phase_samples: Sequence[Sample],
        frame_samples: Sequence[Sample], now: float, window: float = WINDOW_S) -> float | None:
    """Seconds until the film is done; None when it cannot be told (see the module doc)."""
    if not running:
        return None
    if phases_left > 0:
        return remaining_seconds(phases_left, phase_samples, now, window)
    return remaining_seconds(frames_left, frame_samples, now, window)
