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
from tests.unit.test_scheduler import make_scheduler, split_fleet, step


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


def test_start_from_and_image_exclude_each_other_and_one_dependant_per_scene(tmp_path):
    """(`image` with the family: S2V's is its character, kept with start_from)"""
    (tmp_path / "x.png").write_bytes(b"")  # located only, not read
    errs = errors_of([scene("a", 9), scene("b", 9, start_from="a", image=str(tmp_path / "x.png"))])
    assert "gives both `image` and `start_from`" in errs["scenes[1].image"]
    errs = errors_of([scene("a", 9), scene("b", 9, start_from="a"), scene("c", 9, start_from="a")])
    assert "which scenes[1] already starts from" in errs["scenes[2].start_from"]


def test_a_family_without_first_frame_or_chain_refuses_it_and_names_those_that_can():
    errs = errors_of([scene("a", 9), scene("b", 9, start_from="a")], "t2v-a14b")
    msg = errs["scenes[1].start_from"]
    assert "scene 'b': t2v-a14b cannot start a scene from another's last frame" in msg
    assert "it takes no first frame (`image`) and has no chain to continue" in msg
    assert msg.endswith("families that can: animate-14b, i2v-a14b, s2v-14b, ti2v-5b, vace-a14b")


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


# ---- chain continuation: Animate and S2V ----------------------------------------------
# Their `image` / `references` are the character, not a first frame: a dependant's first
# clip is the next clip of a chain after the source's last one (farm.spec.continuity).


@pytest.fixture
def media(tmp_path):
    for name in ("face.png", "song.flac", "pose.mp4"):
        (tmp_path / name).write_bytes(b"x")  # located only, not read
    return tmp_path


def talk(media, sid: str, frames: int, **kw) -> dict:
    return scene(sid, frames, image=str(media / "face.png"), audio=str(media / "song.flac"),
                 **kw)


def dance(media, sid: str, frames: int, **kw) -> dict:
    return scene(sid, frames, references=[str(media / "face.png")],
                 pose_video=str(media / "pose.mp4"), **kw)


def dense_fleet():
    return make_scheduler(("d", {"dense"}), ("t", {"text"}, 9), ("v", {"vae"}, 9))


def test_s2v_keeps_its_reference_photo_and_starts_behind_the_source_history(media):
    """b's first clip is decoded behind the 73-frame history instead of the reference
    latent: it drops those 73 frames and the 3 lead-in ones, and delivers its 157."""
    plan = make_plan([talk(media, "a", 157), talk(media, "b", 157, start_from="a")], "s2v-14b")
    b = plan.scene_plan("b")
    assert b.scene.image == str(media / "face.png")  # the character, still its own
    assert [(u.id, u.after, u.drop_frames, u.frame_start, u.frame_stop) for u in b.units] == [
        ("b/u0", "a/u1", 73 + 3, 0, 77), ("b/u1", "b/u0", 73, 77, 157)]
    a = plan.scene_plan("a").units
    assert [(u.drop_frames, u.frame_stop) for u in a] == [(4, 77), (73, 157)]  # unchanged
    assert dependants(plan, ("a/u1",)) == ("b/u0", "b/u1")
    errs = errors_of([talk(media, "a", 9), scene("b", 9, audio=str(media / "song.flac"),
                                                 start_from="a")], "s2v-14b")
    assert errs == {"scenes[1].image": "s2v-14b needs `image` in every scene"}


def test_an_s2v_dependant_still_takes_its_character_photo(media):
    """`start_from` is no first frame for S2V: a character's image is still its reference."""
    from farm.spec.film import resolve_film
    from farm.spec.profiles import profile_for
    from farm.spec.storyboard import parse_storyboard

    board = {"title": "t", "fps": 16, "width": 64, "height": 64,
             "characters": [{"id": "mara", "name": "Mara", "description": "a red circle",
                             "references": ["face.png"]}],
             "scenes": [talk(media, "a", 9),
                        scene("b", 9, audio="song.flac", characters=["mara"], start_from="a")]}
    film = resolve_film(parse_storyboard(board), profile_for("s2v-14b"), base_dir=media)
    b = film.scene("b")
    assert (b.image, b.start_from) == (str(media / "face.png"), "a")
    assert b.characters[0].used == ("description", "image")


def test_animate_carries_its_chain_frames_and_the_source_must_have_them(media):
    plan = make_plan([dance(media, "a", 9), dance(media, "b", 17, start_from="a",
                                                   carry_frames=5)], "animate-14b")
    (b,) = plan.scene_plan("b").units
    # the carried frames are b's own first frames: nothing dropped, 17 frames delivered
    assert (b.after, b.drop_frames, b.frame_start, b.frame_stop) == ("a/u0", 0, 0, 17)
    errs = errors_of([dance(media, "a", 1), dance(media, "b", 9, start_from="a",
                                                   carry_frames=5)], "animate-14b")
    assert errs == {"scenes[1].start_from": (
        "scene 'b' continues 'a' from its last 5 frames (carry_frames), but 'a' has 1; "
        "allowed: a source of at least 5 frames, or carry_frames: 1")}


@pytest.mark.parametrize(("family", "carry"), [("animate-14b", 5), ("s2v-14b", 73),
                                              ("vace-a14b", 1)])
def test_the_source_decode_carries_the_dependant_chain_frames(media, family, carry):
    """A first-frame family takes one frame (as `image:`); a chain-continuation family
    the frames its chain carries, built with the dependant's own inputs (its character)."""
    from farm.engine.orders import decode_order

    make = {"animate-14b": lambda sid, **kw: dance(media, sid, 9, carry_frames=5, **kw),
            "s2v-14b": lambda sid, **kw: talk(media, sid, 9, **kw),
            "vace-a14b": lambda sid, **kw: scene(sid, 9, **kw)}[family]
    plan = make_plan([make("a"), make("c"), make("b", start_from="a")], family)
    s = dense_fleet() if family != "vace-a14b" else split_fleet()
    s.add_film("f", plan)
    started = rounds(s)
    assert s.progress("f").state == FilmState.SUCCEEDED
    source = next(t for _, t in started if getattr(t, "unit_id", "") == "a/u0"
                  and hasattr(t, "slices"))
    order = decode_order(plan, source)
    assert order.next_clip is not None and order.next_clip.carry == carry
    assert order.next_clip.first and order.next_clip.inputs == plan.film.scene("b").inputs
    first_b = next(t for _, t in started if getattr(t, "unit_id", "") == "b/u0"
                   and hasattr(t, "phase_index"))
    assert first_b.condition_key == source.condition_key
    # a re-render of a renders b again, not c
    s.rerender("f", ("a/u0",))
    again = []
    for i in range(200):
        if not s.has_unfinished_films():
            break
        again += [e for e in step(s, 100.0 + i)[1] if isinstance(e, PhaseFinished)]
    assert sorted({e.unit_id for e in again}) == ["a/u0", "b/u0"]
