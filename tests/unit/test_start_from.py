"""Continuity across cuts (`start_from`): validation, the plan edge, and the scheduler.

    a/u0 ── a/u1 ──┐                     (a: a chain of two clips)
    c/u0           │   independent: runs while b waits
                   ▼
    b/u0 (start_from: a)
"""

from __future__ import annotations

import pytest

from farm.director.persist import resume_units
from farm.plan.continuity import dependants
from farm.sched.output import FilmState, FilmStateChanged, PhaseFinished
from farm.spec.errors import SpecError
from tests.helpers import make_film, make_plan, scene
from tests.unit.test_scheduler import split_fleet, step


def errors_of(scenes: list[dict], family: str = "ti2v-5b") -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        make_film(scenes, family)
    return {e.path: e.message for e in info.value.errors}


# ---- validation ------------------------------------------------------------------------


def test_start_from_must_name_an_earlier_scene():
    errs = errors_of([scene("a", 9, start_from="z"), scene("b", 9, start_from="b"),
                      scene("c", 9, start_from="d"), scene("d", 9)])
    assert "'z', which is not a scene of this film" in errs["scenes[0].start_from"]
    assert "allowed: an earlier scene id (none: it is the first)" in errs["scenes[0].start_from"]
    assert "cannot start from itself" in errs["scenes[1].start_from"]
    assert "'d', which comes later" in errs["scenes[2].start_from"]
    assert "(no cycles); allowed: a, b" in errs["scenes[2].start_from"]


def test_start_from_and_image_exclude_each_other_and_one_dependant_per_scene():
    errs = errors_of([scene("a", 9), scene("b", 9, start_from="a", image="x.png"),
                      scene("c", 9, start_from="a")])
    assert "gives both `image` and `start_from`" in errs["scenes[1].image"]
    assert "which scenes[1] already starts from" in errs["scenes[2].start_from"]


@pytest.mark.parametrize(("family", "why"), [
    ("t2v-a14b", "it takes no first frame (`image`)"),
    ("animate-14b", "it takes no first frame (`image`)"),
    ("s2v-14b", "its `image` is the reference photo that leads every clip"),
])
def test_families_without_a_first_frame_refuse_it_and_name_those_that_can(family, why):
    errs = errors_of([scene("a", 9), scene("b", 9, start_from="a")], family)
    msg = errs["scenes[1].start_from"]
    assert f"scene 'b': {family} cannot start a scene from another's last frame" in msg
    assert why in msg
    assert msg.endswith("families that can: i2v-a14b, ti2v-5b, vace-a14b")


def test_parallel_windows_cannot_start_from_a_frame():
    errs = errors_of([scene("a", 9), scene("b", 33, start_from="a", continuity="windows",
                                           window=3)])
    assert "start_from a" in errs["scenes[1].continuity"]


def test_start_from_stands_for_the_image_an_i2v_scene_needs(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")  # located only, not read
    film = make_film([scene("a", 9, image=str(tmp_path / "a.png")),
                      scene("b", 161, start_from="a")], "i2v-a14b")
    b = film.scene("b")
    assert (b.start_from, b.image, b.continuity) == ("a", None, "chain")  # long: a chain
    errs = errors_of([scene("a", 9)], "i2v-a14b")
    assert errs["scenes[0].image"] == "i2v-a14b needs `image` (or `start_from`) in every scene"


# ---- plan ------------------------------------------------------------------------------


def test_the_dependant_first_unit_comes_after_the_source_last_unit():
    plan = make_plan([scene("a", 17, continuity="chain", window=3), scene("c", 9),
                      scene("b", 17, start_from="a", continuity="chain", window=3)], "ti2v-5b")
    assert [u.id for u in plan.scene_plan("a").units] == ["a/u0", "a/u1"]
    assert [(u.id, u.after) for u in plan.scene_plan("b").units] == [("b/u0", "a/u1"),
                                                                     ("b/u1", "b/u0")]
    assert plan.scene_plan("c").units[0].after is None
    assert dependants(plan, ("a/u1",)) == ("b/u0", "b/u1")
    assert dependants(plan, ("c/u0",)) == ()


def test_a_restart_recomputes_a_decoded_source_whose_dependant_waits():
    plan = make_plan([scene("a", 9), scene("b", 9, start_from="a")], "ti2v-5b")
    done = {r.unit_id: r.decoded for r in resume_units(plan, {}, frames_written=9)}
    assert done == {"a/u0": False, "b/u0": False}  # a's conditioning of b died with the run
    done = {r.unit_id: r.decoded for r in resume_units(plan, {}, frames_written=18)}
    assert done == {"a/u0": True, "b/u0": True}


# ---- scheduler ---------------------------------------------------------------------------


def film_abc():
    """VACE: every scene encodes its inputs (references, control), so the decode that
    starts b also needs b's encoded inputs."""
    return make_plan([scene("a", 17, continuity="chain", window=3), scene("b", 9, start_from="a"),
                      scene("c", 17, continuity="chain", window=3)], "vace-a14b")


def rounds(s, n: int = 200):
    """(round, task) of every task started until the film ends."""
    out_tasks = []
    for i in range(n):
        if not s.has_unfinished_films():
            break
        out, _ = step(s, float(i))
        out_tasks += [(i, t) for t in (*out.images, *out.phases, *out.decodes)]
    return out_tasks


def test_dependant_waits_for_the_source_last_decode_while_an_independent_scene_runs():
    s = split_fleet()
    s.add_film("f", film_abc())
    started = rounds(s)
    assert s.progress("f").state == FilmState.SUCCEEDED
    phases = [(i, t.unit_id) for i, t in started if hasattr(t, "phase_index")]
    decodes = {t.unit_id: (i, t) for i, t in started if hasattr(t, "slices")}
    images = {t.scene_id: t.output_key for _, t in started if hasattr(t, "output_key")
              and t.task_id.split("/")[2] == "image"}
    last_a, source = decodes["a/u1"]
    # the decode of a's last clip builds b's first clip from b's encoded inputs
    assert source.condition_key and source.scene_key == images["b"]
    # every phase of b starts after that decode was reported (steps report in-round)
    assert min(i for i, u in phases if u.startswith("b/")) > last_a
    # c (independent) ran meanwhile
    assert min(i for i, u in phases if u.startswith("c/")) < last_a
    # b's first phase read a's conditioning
    first_b = next(t for _, t in started if getattr(t, "unit_id", "") == "b/u0"
                   and hasattr(t, "phase_index"))
    assert first_b.condition_key == source.condition_key


def test_rerender_of_the_source_renders_its_dependant_again_and_says_so():
    s = split_fleet()
    s.add_film("f", make_plan([scene("a", 9), scene("b", 9, start_from="a"),
                               scene("c", 17, continuity="chain", window=3)], "vace-a14b"))
    rounds(s)
    events = s.rerender("f", ("a/u0",))
    (changed,) = [e for e in events if isinstance(e, FilmStateChanged)]
    assert changed.state == FilmState.RUNNING
    assert changed.reason == "re-render; dependants re-rendered too: b/u0"
    again = []
    for i in range(200):
        if not s.has_unfinished_films():
            break
        again += [e for e in step(s, 100.0 + i)[1] if isinstance(e, PhaseFinished)]
    assert s.progress("f").state == FilmState.SUCCEEDED
    assert sorted({e.unit_id for e in again}) == ["a/u0", "b/u0"]  # c untouched


def test_start_from_crosses_the_api_both_ways():
    from farm.api.convert import film_to_storyboard, storyboard_to_film

    board = {"title": "t", "fps": 16, "width": 64, "height": 64,
             "scenes": [scene("a", 9), scene("b", 9, start_from="a")]}
    film = storyboard_to_film(board)
    assert [s.start_from for s in film.scenes] == ["", "a"]
    back = film_to_storyboard(film)["scenes"]
    assert "start_from" not in back[0] and back[1]["start_from"] == "a"


def test_a_rewrite_skips_the_scenes_between_a_source_and_its_dependant():
    from farm.stitch.stream import FrameStream

    stream = FrameStream([("a", 3), ("c", 2), ("b", 3)], start=0, stop=8, skip=((3, 5),))
    for sid, n in (("b", 3), ("a", 3)):
        for i in range(n):
            assert stream.put(sid, i, f"{sid}{i}")
    assert not stream.put("c", 0, "c0")  # kept on disk: not delivered again
    assert [f.frame for f in stream] == ["a0", "a1", "a2", "b0", "b1", "b2"]
