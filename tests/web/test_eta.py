"""ETA from the observed progress rate (pure; see farm/web/eta.py for the rule)."""

from __future__ import annotations

import pytest

from farm.web.eta import eta, rate, remaining_seconds


def test_rate_is_done_over_time_within_the_window():
    samples = [(100.0, 0), (110.0, 2), (120.0, 4)]
    assert rate(samples) == pytest.approx(4 / 20)
    # Only the last 15 s count, starting from the sample just before them: 110 -> 120.
    assert rate(samples, window=5.0) == pytest.approx(2 / 10)


def test_a_slow_start_is_forgotten_once_outside_the_window():
    # Model loading made the first phase take 60 s; later phases take 2 s each.
    samples = [(0.0, 0), (60.0, 1)] + [(60.0 + 2 * k, 1 + k) for k in range(1, 100)]
    assert rate(samples, window=120.0) == pytest.approx(0.5)
    assert rate(samples[:4], window=120.0) == pytest.approx(3 / 64)


@pytest.mark.parametrize("samples", [[], [(5.0, 3)], [(5.0, 3), (5.0, 4)], [(5.0, 3), (9.0, 3)]])
def test_no_rate_without_two_samples_that_differ(samples):
    assert rate(samples) is None
    assert remaining_seconds(10, samples, now=10.0) is None


def test_remaining_counts_down_from_the_last_sample_and_never_below_zero():
    samples = [(0.0, 0), (10.0, 5)]  # 0.5 per second
    assert remaining_seconds(5, samples, now=10.0) == pytest.approx(10.0)
    assert remaining_seconds(5, samples, now=14.0) == pytest.approx(6.0)
    assert remaining_seconds(5, samples, now=30.0) == 0.0
    assert remaining_seconds(0, [], now=30.0) == 0.0


def test_eta_uses_phases_while_any_remain_then_frames():
    phases = [(0.0, 0), (10.0, 10)]  # 1 phase/s
    frames = [(0.0, 0), (10.0, 20)]  # 2 frames/s
    assert eta(True, 5, 100, phases, frames, now=10.0) == pytest.approx(5.0)
    assert eta(True, 0, 10, phases, frames, now=10.0) == pytest.approx(5.0)
    assert eta(True, 0, 0, phases, frames, now=10.0) == 0.0
    assert eta(False, 5, 100, phases, frames, now=10.0) is None  # queued, paused or final
