"""Frame arithmetic, timestep split between experts, window and chain plans."""

from __future__ import annotations

import pytest

from farm.plan.segments import (
    Window,
    blend_weights,
    neighbours,
    owner_slices,
    plan_chain,
    plan_windows,
)
from farm.plan.timesteps import Phase, expert_of_timestep, phases, timesteps
from farm.spec.frames import latent_frames, nearest_frame_counts, pixel_frames
from tests.helpers import make_plan, scene


@pytest.mark.parametrize("n,latent", [(1, 1), (5, 2), (9, 3), (17, 5), (81, 21), (121, 31)])
def test_frames_latents_round_trip(n, latent):
    assert latent_frames(n) == latent
    assert pixel_frames(latent) == n


def test_invalid_frame_count_is_rejected_not_rounded():
    with pytest.raises(ValueError, match="12 is not 4k\\+1"):
        latent_frames(12)
    assert nearest_frame_counts(12) == (9, 13)
    assert nearest_frame_counts(0) == (1,)


@pytest.mark.parametrize("solver,steps,shift,bounds,split", [
    ("unipc", 40, 12.0, (0.875,), (26, 14)),   # official T2V-A14B
    ("unipc", 40, 5.0, (0.9,), (15, 25)),      # official I2V-A14B
    ("unipc", 40, 3.0, (0.875,), (13, 27)),    # diffusers-converted default shift
    ("unipc", 20, 12.0, (0.875,), (13, 7)),
    ("unipc", 50, 12.0, (0.875,), (32, 18)),
])
def test_expert_step_split_matches_published_tables(solver, steps, shift, bounds, split):
    ph = phases(timesteps(solver, steps, shift), bounds)
    assert tuple(p.num_steps for p in ph) == split
    assert ph[0] == Phase(0, 0, split[0]) and ph[1] == Phase(1, split[0], steps)


def test_dense_model_is_one_expert():
    ph = phases(timesteps("unipc", 50, 5.0), ())
    assert ph == (Phase(0, 0, 50),)
    assert expert_of_timestep(999, ()) == 0


def test_windows_cover_scene_with_at_least_the_overlap():
    for n in range(1, 120):
        for window, overlap in [(21, 4), (21, 8), (8, 3), (5, 4), (2, 1)]:
            ws = plan_windows(n, window, overlap)
            assert ws[0].start == 0 and ws[-1].stop == n
            assert len({w.size for w in ws}) == 1 and ws[0].size <= window
            # the fewest windows that can cover n frames with the overlap
            assert len(ws) == (1 if n <= window else -(-(n - overlap) // (window - overlap)))
            for a, b in zip(ws, ws[1:], strict=False):
                assert a.stop - b.start >= overlap and b.start > a.start
            assert sum(s.size for s in owner_slices(ws)) == n


def test_windows_rejects_bad_overlap():
    with pytest.raises(ValueError, match="overlap must be in"):
        plan_windows(40, 8, 8)


def test_chain_segments_share_one_latent_and_cover_scene():
    for n in range(1, 100):
        ws = plan_chain(n, 21)
        assert ws[0].start == 0 and ws[-1].stop == n
        assert all(1 <= w.size <= 21 for w in ws)
        assert all(a.stop - 1 == b.start for a, b in zip(ws, ws[1:], strict=False))


def test_blend_weights_are_a_linear_ramp_in_two_window_overlaps():
    ws = (Window(0, 10), Window(6, 16))
    left, right = blend_weights(ws[0]), blend_weights(ws[1])
    shared = range(6, 10)
    ratios = [left[f] / (left[f] + right[f - 6]) for f in shared]
    assert ratios == pytest.approx([0.8, 0.6, 0.4, 0.2])
    assert neighbours(ws, 0) == (1,) and neighbours(ws, 1) == (0,)


def test_film_plan_units_and_frame_ranges():
    plan = make_plan([scene("a", 17), scene("b", 241, continuity="windows")], steps=40)
    a, b = plan.scenes
    assert [u.id for u in a.units] == ["a/u0"] and len(a.units[0].segments) == 1
    (ub,) = b.units
    assert ub.is_gang and len(ub.segments) == 4
    assert ub.segments[1].neighbour_ids == ("b/0", "b/2")
    assert (ub.frame_start, ub.frame_stop) == (0, 241)
    assert b.film_frame_start == 17
    assert [p.num_steps for p in plan.phases] == [26, 14]


def test_chain_plan_drops_the_shared_frame():
    plan = make_plan([scene("c", 161, continuity="chain")], family="ti2v-5b")
    units = plan.scenes[0].units
    assert len(units) == 2 and units[1].after == "c/u0"
    assert [(u.frame_start, u.frame_stop, u.drop_frames) for u in units] == [
        (0, 81, 0), (81, 161, 1)]


def test_phases_split_into_chunks_keep_the_expert_split():
    steps = timesteps("unipc", 40, 12.0)
    whole = phases(steps, (0.875,))
    chunks = phases(steps, (0.875,), max_steps=7)
    assert [(p.expert, p.num_steps) for p in chunks] == [
        (0, 6), (0, 7), (0, 7), (0, 6), (1, 7), (1, 7)]
    assert [c.start for c in chunks[1:]] == [c.stop for c in chunks[:-1]]  # contiguous
    for e, p in enumerate(whole):  # each expert's steps are exactly its chunks
        mine = [c for c in chunks if c.expert == e]
        assert (mine[0].start, mine[-1].stop) == (p.start, p.stop)
    assert phases(steps, (0.875,), max_steps=100) == whole
    with pytest.raises(ValueError, match="max_steps"):
        phases(steps, (0.875,), max_steps=0)
