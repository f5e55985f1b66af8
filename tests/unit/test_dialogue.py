"""Dialogue scenes (farm.spec.dialogue): the schema, the frame rule of the cuts, the errors,
and the expansion into one plain S2V scene per turn."""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import pairwise

import pytest

from farm.plan.film import plan_film
from farm.spec.dialogue import count_scenes, cut_frame, split_slice
from farm.spec.errors import SpecError
from farm.spec.film import resolve_film
from farm.spec.profiles import PROFILES
from farm.spec.serde import film_from_dict, film_to_dict
from farm.spec.storyboard import media_entries, parse_storyboard

S2V = PROFILES["s2v-14b"]
FPS = 16


def turns(*rows) -> list[dict]:
    return [{"speaker": s, "start": a, "end": b, **({"reaction": True} if r else {})}
            for s, a, b, *rest in rows for r in [rest[0] if rest else False]]


TURNS = turns(("mira", 0, 2.5), ("sam", 2.55, 3.8), ("mira", 3.85, 4.9, True))


def board(dialogue: dict | None = None, **scene) -> dict:
    d = {"audio": "talk.flac", "speakers": [{"character": "mira"},
                                            {"id": "sam", "photo": "sam.png"}],
         "turns": TURNS} | (dialogue or {})
    return {"title": "t", "fps": FPS, "width": 64, "height": 64,
            "characters": [{"id": "mira", "description": "a woman in yellow",
                            "references": ["mira.png"]}],
            "scenes": [{"id": "talk", "prompt": "two people talk", "seed": 5, "dialogue": d,
                        **scene}]}


@pytest.fixture
def files(tmp_path):
    for name in ("mira.png", "sam.png", "talk.flac", "a.flac", "b.flac", "x.png"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def resolve(data: dict, base, profile=S2V):
    return resolve_film(parse_storyboard(data), profile, base_dir=base)


def errors(data: dict, base, profile=S2V) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        resolve(data, base, profile)
    return {e.path: e.message for e in err.value.errors}


def rule(t: str) -> int:
    """The documented frame rule, restated: the first frame starting at or after t."""
    return math.ceil(Fraction(t) * FPS)


def test_frame_rule_reads_the_decimal_written():
    assert cut_frame(1.1, 10) == 11                  # the float 1.1 is above 1.1: ceil would be 12
    assert cut_frame(2.55, 16) == 41 == rule("2.55")
    assert cut_frame(2.5625, 16) == 41                # exactly frame 41's start: cuts there
    assert cut_frame(2.5626, 16) == 42
    assert cut_frame(0, 24) == 0


def test_one_shot_per_turn_cut_at_the_turn_starts(files):
    film = resolve(board(), files)
    cuts = [0, rule("2.55"), rule("3.85"), rule("4.9")]
    assert [s.id for s in film.scenes] == ["talk-1-mira", "talk-2-sam", "talk-3-mira"]
    assert [s.num_frames for s in film.scenes] == [b - a for a, b in pairwise(cuts)]
    assert [(s.dialogue.first_frame, s.dialogue.stop_frame) for s in film.scenes] == list(
        pairwise(cuts))
    plan = plan_film(film)
    assert [sp.film_frame_start for sp in plan.scenes] == cuts[:-1]
    assert [s.inputs.image for s in film.scenes] == [str(files / n) for n in
                                                     ("mira.png", "sam.png", "mira.png")]
    assert [s.seed for s in film.scenes] == [5, 6, 7]
    # a film character's description reaches its shots (farm.spec.characters)
    assert "a woman in yellow" in film.scenes[0].prompt
    assert film.scenes[1].prompt == "two people talk"
    assert count_scenes(film.scenes) == "1 scene (1 dialogue: 3 shots)"  # `validate` says so
    plain = board()
    plain["scenes"].append({"id": "after", "prompt": "a door", "frames": 17, "audio": "a.flac",
                            "image": "x.png"})
    assert count_scenes(resolve(plain, files).scenes) == "2 scenes (1 dialogue: 3 shots)"


def test_each_shot_hears_its_slice_and_a_reaction_hears_silence(files):
    film = resolve(board(), files)
    track = str(files / "talk.flac")
    spans = [split_slice(s.inputs.audio) for s in film.scenes]
    cuts = [0, rule("2.55"), rule("3.85"), rule("4.9")]
    assert spans == [(track, (Fraction(a, FPS), Fraction(b, FPS), k == 2))
                     for k, (a, b) in enumerate(pairwise(cuts))]
    # the deliverable plays the track itself, also during the reaction
    assert [split_slice(s.dialogue.sound[0])[1][2] for s in film.scenes] == [False] * 3
    assert [s.dialogue.path for s in film.scenes] == [
        f"scenes[0].dialogue.turns[{k}]" for k in range(3)]


def test_per_speaker_tracks(files):
    film = resolve(board({"audio": None, "speakers": [
        {"character": "mira", "audio": "a.flac"}, {"id": "sam", "photo": "sam.png",
                                                   "audio": "b.flac"}]}), files)
    own = [split_slice(s.inputs.audio)[0] for s in film.scenes]
    assert own == [str(files / n) for n in ("a.flac", "b.flac", "a.flac")]
    for s in film.scenes:   # the deliverable: both tracks' slices, summed
        assert [split_slice(x)[0] for x in s.dialogue.sound] == [str(files / "a.flac"),
                                                                  str(files / "b.flac")]
        assert {split_slice(x)[1] for x in s.dialogue.sound} == {split_slice(s.inputs.audio)[1][:2]
                                                                 + (False,)}


def test_a_pause_stays_on_the_speaker_and_the_first_shot_starts_at_frame_0(files):
    film = resolve(board({"turns": turns(("mira", 0.5, 1.0), ("sam", 1.55, 2.6))}), files)
    assert [(s.dialogue.first_frame, s.dialogue.stop_frame) for s in film.scenes] == [
        (0, rule("1.55")), (rule("1.55"), rule("2.6"))]


def test_errors_name_the_field_and_the_allowed_values(files):
    got = errors(board({"turns": turns(("mira", 0, 2.5), ("sam", 2.4, 3.8), ("ben", 3.85, 4.9))}),
                 files)
    assert "turns are in order and do not overlap" in got["scenes[0].dialogue.turns[1].start"]
    assert "speakers: mira, sam" in got["scenes[0].dialogue.turns[2].speaker"]
    got = errors(board({"audio": "talk.flac", "speakers": [
        {"character": "mira", "audio": "a.flac"}, {"id": "sam"}]}, frames=81, image="x.png"),
        files)
    assert "not both" in got["scenes[0].dialogue.audio"]
    assert "needs its photo" in got["scenes[0].dialogue.speakers[1].photo"]
    assert "remove `frames`" in got["scenes[0].frames"]
    assert "remove `image`" in got["scenes[0].image"]
    got = errors(board({"audio": None}), files)
    assert "missing: speakers[0].audio, speakers[1].audio" in got["scenes[0].dialogue.audio"]
    got = errors(board({"speakers": [{"character": "ben"}, {"id": "sam", "photo": "sam.png"},
                                     {"id": "zoe", "photo": "x.png"}]}), files)
    assert "known: mira" in got["scenes[0].dialogue.speakers[0].character"]
    assert "has no turn" in got["scenes[0].dialogue.speakers[2]"]
    got = errors(board({"turns": turns(("mira", 1.0, 0.5))}), files)
    assert "must be after start" in got["scenes[0].dialogue.turns[0].end"]


def test_a_dialogue_needs_a_speech_to_video_family(files):
    got = errors(board(), files, PROFILES["i2v-a14b"])
    assert got["scenes[0].dialogue"].endswith("family is i2v-a14b; allowed: s2v-14b")


def test_a_missing_photo_is_named_at_its_speaker(files):
    (files / "sam.png").unlink()
    got = errors(board(), files)
    assert "no such file" in got["scenes[0].dialogue.speakers[1].photo"]


def test_shots_not_4k_plus_1_are_refused_with_valid_times(files):
    # sam from 2.5 s: the first shot is 40 frames
    bad = turns(("mira", 0, 2.4), ("sam", 2.5, 3.8), ("mira", 3.85, 4.9, True))
    got = errors(board({"turns": bad}), files)
    msg = got["scenes[0].dialogue.turns[1].start"]
    assert "frames 0..39 of the dialogue, 40 frames at 16 fps" in msg and "not 4k+1" in msg
    assert "2.3125 s (frame 37) or 2.5625 s (frame 41)" in msg
    for fix in (2.3125, 2.5625):     # each suggested time makes a valid film
        good = turns(("mira", 0, 2.3), ("sam", fix, 3.8), ("mira", 3.85, 4.9, True))
        assert len(resolve(board({"turns": good}), files).scenes) == 3
    # the last turn's end sets the last shot's length
    got = errors(board({"turns": turns(("mira", 0, 2.5), ("sam", 2.55, 3.0))}), files)
    assert "nearest valid" in got["scenes[0].dialogue.turns[1].end"]


def test_suggested_times_cut_where_they_say():
    from farm.spec.dialogue import time_for

    for fps in (16, 24, 25, 30, 7):
        for frame in range(1, 200):
            assert cut_frame(float(time_for(frame, fps)[:-2]), fps) == frame


def test_fields_the_shots_take_from_the_scene_are_named_at_the_scene(files):
    got = errors(board(guidance={"high": 3.0}), files)
    assert list(got) == ["scenes[0].guidance"]      # once, not once per shot


def test_shot_ids_must_not_clash(files):
    data = board()
    data["scenes"].append({"id": "talk-2-sam", "prompt": "x", "frames": 5, "image": "x.png",
                           "audio": "a.flac"})
    with pytest.raises(SpecError) as err:
        parse_storyboard(data)
    assert "talk-2-sam is another scene's id" in str(err.value)


def test_rights_cover_dialogue_media_and_the_film_round_trips(files):
    data = board()
    assert {"talk.flac", "sam.png"} <= set(media_entries(parse_storyboard(data)))
    film = resolve(data, files)
    assert film_from_dict(film_to_dict(film)) == film
