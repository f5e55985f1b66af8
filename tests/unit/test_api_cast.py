"""Characters and dialogue scenes through the proto (farm.api.cast via convert) and the SDK's
renaming of the files they name (farm.client.media): round trips equal, turn times exact,
errors at request paths."""

from __future__ import annotations

import pytest

from farm.api import convert
from farm.api.protos import pb
from farm.client import media
from farm.spec.errors import SpecError
from farm.spec.storyboard import parse_storyboard

CHARACTERS = {
    "title": "t", "fps": 16, "width": 64, "height": 64, "model": "tiny-vace-a14b",
    "characters": [
        {"id": "mara", "name": "Mara", "description": "a red circle",
         "references": ["refs/mara.png", "refs/mara_side.png"],
         "loras": [{"name": "loras/mara.safetensors", "high": 0.5, "low": 1.0}],
         "first_frame": True},
        {"id": "old_tom", "description": "a grey square"},
    ],
    "scenes": [{"id": "a", "prompt": "Mara waits", "frames": 9, "characters": ["mara"]},
               {"id": "b", "prompt": "p", "frames": 9, "cast": ["old_tom", "mara"]},
               {"id": "c", "prompt": "q", "frames": 9}],
}
# Times whose doubles have no short decimal, and one written as an integer.
TURNS = [{"speaker": "mira", "start": 0, "end": 0.1 + 0.2},
         {"speaker": "sam", "start": 0.1 + 0.2, "end": 2.55},
         {"speaker": "mira", "start": 2.6, "end": 14 / 3, "reaction": True}]


def dialogue_board(**dialogue) -> dict:
    return {"title": "talk", "fps": 16, "width": 64, "height": 64, "model": "tiny-s2v-14b",
            "characters": [{"id": "mira", "description": "a woman in yellow",
                            "references": ["mira.png"]}],
            "scenes": [{"id": "talk", "prompt": "two people talk", "seed": 5,
                        "dialogue": {"turns": TURNS, **dialogue}}]}


MIXED = dialogue_board(audio="talk.flac", speakers=[{"character": "mira"},
                                                    {"id": "sam", "photo": "sam.png"}])
TRACKS = dialogue_board(speakers=[{"character": "mira", "photo": "mira2.png", "audio": "m.flac"},
                                  {"id": "sam", "photo": "sam.png", "audio": "s.flac"}])


def round_trip(data: dict) -> tuple[pb.Film, dict]:
    film = convert.storyboard_to_film(parse_storyboard(data).model_dump(exclude_unset=True))
    wire = pb.Film.FromString(film.SerializeToString())
    return wire, convert.film_to_storyboard(wire)


def test_characters_survive_the_round_trip():
    wire, back = round_trip(CHARACTERS)
    assert parse_storyboard(back) == parse_storyboard(CHARACTERS)
    assert [c.id for c in wire.characters] == ["mara", "old_tom"]
    assert list(wire.scenes[1].characters) == ["old_tom", "mara"]  # `cast:` read as characters
    assert not wire.scenes[2].characters and "characters" not in back["scenes"][2]
    mara = wire.characters[0]
    assert (mara.name, mara.first_frame, list(mara.references)) == (
        "Mara", True, ["refs/mara.png", "refs/mara_side.png"])
    assert (mara.loras[0].HasField("weight"), mara.loras[0].high) == (False, 0.5)
    assert back["characters"][1] == {"id": "old_tom", "description": "a grey square"}


@pytest.mark.parametrize("data", [MIXED, TRACKS], ids=["mixed", "tracks"])
def test_a_dialogue_survives_the_round_trip_with_its_times_exact(data):
    wire, back = round_trip(data)
    assert parse_storyboard(back) == parse_storyboard(data)
    turns = wire.scenes[0].dialogue.turns
    assert [(t.start, t.end) for t in turns] == [(float(t["start"]), t["end"]) for t in TURNS]
    assert turns[1].start == 0.30000000000000004 and turns[2].end == 14 / 3  # not rounded
    assert [t.reaction for t in turns] == [False, False, True]
    assert back["scenes"][0]["dialogue"]["turns"][2]["end"] == 4.666666666666667


def test_a_bad_turn_is_named_at_its_request_path():
    film = convert.storyboard_to_film(parse_storyboard(MIXED).model_dump(exclude_unset=True))
    film.scenes[0].dialogue.turns[1].end = 0.2  # before its start
    film.scenes[0].dialogue.speakers[1].ClearField("photo")  # a scene-only speaker: no photo
    film.scenes[0].dialogue.turns[2].speaker = "bob"
    with pytest.raises(SpecError) as exc:
        parse_storyboard(convert.film_to_storyboard(film))
    paths = {convert.request_path(e.path, film) for e in exc.value.errors}
    assert paths == {"film.scenes[0].dialogue.turns[1].end",
                     "film.scenes[0].dialogue.turns[2].speaker",
                     "film.scenes[0].dialogue.speakers[1].photo"}


def test_the_sdk_renames_the_dialogue_files_to_media_names(tmp_path):
    for f in ("mira.png", "mira2.png", "sam.png", "m.flac", "s.flac"):
        (tmp_path / f).write_bytes(f.encode())
    board, base = media.load(TRACKS, tmp_path)
    files = media.media_files(board, base)
    assert sorted(f.display_name for f in files) == sorted(
        ["mira.png", "mira2.png", "sam.png", "m.flac", "s.flac"])
    names = {f.location: f"media/{f.display_name}" for f in files}
    d = media.with_media_names(board, base, names)["scenes"][0]["dialogue"]
    assert d["speakers"] == [
        {"character": "mira", "photo": "media/mira2.png", "audio": "media/m.flac"},
        {"id": "sam", "photo": "media/sam.png", "audio": "media/s.flac"}]
    board, base = media.load(MIXED, tmp_path)
    (tmp_path / "talk.flac").write_bytes(b"t")
    names = {f.location: f"media/{f.display_name}" for f in media.media_files(board, base)}
    d = media.with_media_names(board, base, names)["scenes"][0]["dialogue"]
    assert (d["audio"], d["speakers"][1]["photo"]) == ("media/talk.flac", "media/sam.png")
    assert d["speakers"][0] == {"character": "mira"}  # her photo: the character's reference


def test_a_missing_dialogue_file_is_named_by_its_field(tmp_path):
    (tmp_path / "mira.png").write_bytes(b"x")
    board, base = media.load(MIXED, tmp_path)
    with pytest.raises(SpecError) as exc:
        media.media_files(board, base)
    assert {e.path for e in exc.value.errors} == {"scenes[0].dialogue.audio",
                                                  "scenes[0].dialogue.speakers[1].photo"}
