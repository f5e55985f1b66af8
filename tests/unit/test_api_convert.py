"""The proto <-> domain conversion: storyboards both ways, field paths, frame chunking."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from farm.api import chunks, convert
from farm.api.protos import pb
from farm.director.archive import ArchivedFrame
from farm.spec.errors import SpecError
from farm.spec.storyboard import parse_storyboard

BOARD = {
    "title": "t", "fps": 16, "width": 64, "height": 64, "model": "tiny", "steps": 8,
    "shift": 5.0, "solver": "euler", "negative_prompt": "blurry", "window": 10, "overlap": 2,
    "scenes": [
        {"id": "a", "prompt": "p", "frames": 17, "seed": 3, "guidance": {"high": 4.0},
         "continuity": "windows", "window": 5, "overlap": 1, "negative_prompt": ""},
        {"id": "b", "prompt": "q", "seconds": 0.5625, "guidance": 2.5},
    ],
}


def test_a_storyboard_survives_the_round_trip_through_the_proto():
    film = convert.storyboard_to_film(parse_storyboard(BOARD).model_dump(exclude_unset=True))
    wire = pb.Film.FromString(film.SerializeToString())
    back = convert.film_to_storyboard(wire)
    assert parse_storyboard(back) == parse_storyboard(BOARD)
    assert not wire.scenes[1].HasField("negative_prompt")  # unset stays unset (film default)
    assert wire.scenes[0].HasField("negative_prompt")      # "" is a value


def test_field_paths_become_request_paths():
    film = convert.storyboard_to_film(BOARD)
    assert convert.request_path("scenes[1].frames", film) == "film.scenes[1].frames"
    assert (convert.request_path("scenes[0].guidance.high", film)
            == "film.scenes[0].guidance_per_expert.high")
    assert convert.request_path("scenes[1].guidance", film) == "film.scenes[1].guidance"
    assert convert.request_path("", film) == "film"


def test_proto_only_mistakes_are_field_errors():
    film = convert.storyboard_to_film(BOARD)
    film.scenes[0].guidance = 1.0  # both guidance forms
    film.solver = 9
    with pytest.raises(SpecError) as exc:
        convert.film_to_storyboard(film)
    assert {e.path for e in exc.value.errors} == {"solver", "scenes[0].guidance_per_expert"}


@pytest.mark.parametrize("encoding", [pb.FRAME_ENCODING_RGB24, pb.FRAME_ENCODING_PNG])
def test_a_1080p_frame_travels_in_chunks_under_the_limit_and_reassembles(tmp_path, encoding):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "f.png")
    frame = ArchivedFrame("s1", 4, 20, tmp_path / "f.png")
    messages = list(chunks.frame_messages(frame, (1920, 1080), encoding, 90))
    assert len(messages) > 1
    assert all(m.ByteSize() < chunks.CHUNK_BYTES + 1024 for m in messages)
    assembler = chunks.FrameAssembler()
    done = [f for m in messages if (f := assembler.add(m)) is not None]
    assert len(done) == 1 and (done[0].scene_id, done[0].index, done[0].film_index) == ("s1", 4, 20)
    np.testing.assert_array_equal(done[0].to_array(), pixels)


def test_states_by_word():
    assert convert.state_word(pb.Film.STATE_SUCCEEDED) == "SUCCEEDED"
    assert convert.state_from_word("state_running").value == "RUNNING"
    with pytest.raises(ValueError, match="QUEUED"):
        convert.state_from_word("DONE")
