"""Characters and dialogue scenes over the API (a real server on 127.0.0.1, tiny models): the
SDK uploads the files they name (character images and LoRAs, dialogue photos and tracks),
the served frames equal `reelfarm render`'s of the same storyboard bit for bit, and a bad
turn is INVALID_ARGUMENT naming it at `film.scenes[0].dialogue.turns[k]`, whether the
storyboard's rules or the server's media catch it."""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
import pytest
import yaml
from PIL import Image

from farm.api import convert
from farm.api.auth import Authenticator
from farm.api.protos import pb
from farm.api.server import ServerConfig, local_server
from farm.cli import main
from farm.client import Client, InvalidArgumentError
from farm.model.loader import resolve_model
from farm.model.worker import TorchWorker
from farm.spec.storyboard import parse_storyboard
from tests.media_files import write_image, write_tone
from tests.model.lora_helpers import random_lora, save_diffusers
from tests.serving.api.helpers import TOKEN, TOKENS, wait_final

pytestmark = [pytest.mark.grpc, pytest.mark.model]
# The sizes of tests/model/test_dialogue.py: 64x64 (S2V's multiple), 2 steps, 16 fps;
# shots of 9, 5 and 9 frames.
TURNS = [{"speaker": "mira", "start": 0, "end": 0.5},
         {"speaker": "sam", "start": 0.55, "end": 0.8},
         {"speaker": "mira", "start": 0.85, "end": 1.4, "reaction": True}]
SHOTS = {"talk-1-mira": 9, "talk-2-sam": 5, "talk-3-mira": 9}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cast")
    write_image(folder / "mira.png", 96, 80, seed=1)
    write_image(folder / "sam.png", 80, 96, seed=2)
    write_image(folder / "prop.png", 40, 24, seed=3)
    write_tone(folder / "talk.flac", 1.5)
    write_tone(folder / "short.flac", 1.2)
    base = TorchWorker(resolve_model("tiny-vace-a14b")).loader.expert("high")
    save_diffusers(folder / "mira_lora", random_lora(base, 2, seed=1, scale=0.3), 2.0)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    server, director = local_server(["tiny-s2v-14b", "tiny-vace-a14b"], root / "art",
                                    Authenticator.from_tokens(TOKENS), ServerConfig(port=0),
                                    db=f"sqlite:///{root / 'jobs.db'}")
    yield server
    server.stop(grace=1.0)
    director.stop()


def mira(**more) -> dict:
    return {"id": "mira", "name": "Mira", "description": "a woman in a yellow coat",
            "references": ["mira.png"], **more}


def dialogue_board(audio: str = "talk.flac") -> dict:
    return {"title": "talk", "fps": 16, "width": 64, "height": 64, "model": "tiny-s2v-14b",
            "steps": 2, "negative_prompt": "blurry", "characters": [mira()],
            "scenes": [{"id": "talk", "prompt": "two people talk", "seed": 5, "dialogue": {
                "audio": audio, "turns": TURNS,
                "speakers": [{"character": "mira"}, {"id": "sam", "photo": "sam.png"}]}}]}


def characters_board() -> dict:
    return {"title": "mira", "fps": 16, "width": 32, "height": 32, "model": "tiny-vace-a14b",
            "steps": 2, "characters": [mira(first_frame=True, references=["mira.png", "prop.png"],
                                            loras=[{"name": "mira_lora", "weight": 0.8}])],
            "scenes": [{"id": "a", "prompt": "Mira walks", "frames": 9, "seed": 1,
                        "characters": ["mira"]},
                       {"id": "b", "prompt": "an empty street", "frames": 5, "seed": 2}]}


def local_and_served(server, folder, tmp_path, story: dict, name: str):
    """(scene id -> frames) of `reelfarm render` and of the API, and the served film."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(story))
    assert main(["render", str(path), "-o", str(tmp_path / "local.mp4"),
                 "--frames-dir", str(tmp_path / "frames")]) == 0
    local = {d.name: [np.asarray(Image.open(p).convert("RGB")) for p in sorted(d.glob("*.png"))]
             for d in (tmp_path / "frames").iterdir() if d.is_dir()}
    with Client(server.address, token=TOKEN["alice"]) as c:
        handle = c.submit(path)
        done = wait_final(handle, timeout=400)
        assert done.state == pb.Film.STATE_SUCCEEDED, done.state_reason
        served = defaultdict(list)
        for f in handle.frames():
            served[f.scene_id].append(f.to_array())
    return local, dict(served), done


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        len(a[k]) == len(b[k]) and all(np.array_equal(x, y) for x, y in zip(a[k], b[k],
                                                                             strict=True))
        for k in a)


def test_a_dialogue_renders_through_the_api_as_locally(server, files, tmp_path):
    local, served, film = local_and_served(server, files, tmp_path, dialogue_board(), "talk")
    assert {k: len(v) for k, v in served.items()} == SHOTS
    assert same(served, local)
    # read back as its shots, each from its speaker's photo, uploaded as media
    assert [s.id for s in film.scenes] == list(SHOTS)
    assert all(s.image.startswith("media/") for s in film.scenes)
    assert film.scenes[0].image == film.scenes[2].image != film.scenes[1].image
    assert not any(s.audio for s in film.scenes)  # slices of the track, not media


def test_a_characters_film_renders_through_the_api_as_locally(server, files, tmp_path):
    local, served, film = local_and_served(server, files, tmp_path, characters_board(), "mira")
    assert {k: len(v) for k, v in served.items()} == {"a": 9, "b": 5}
    assert same(served, local)
    a, b = film.scenes
    assert "Mira: a woman in a yellow coat." in a.prompt and "Mira" not in b.prompt
    assert a.image.startswith("media/") and len(a.references) == 2 and not b.references
    assert [lo.name.startswith("media/") for lo in a.loras] == [True] and not b.loras


def test_a_bad_turn_is_invalid_argument_naming_it(server, files):
    with Client(server.address, token=TOKEN["alice"]) as c:
        # sent as protos (the SDK would refuse these storyboards before any call)
        names = {p: c.upload(files / p).name for p in ("mira.png", "sam.png", "talk.flac")}
        board = dialogue_board(names["talk.flac"])
        board["characters"][0]["references"] = [names["mira.png"]]
        board["scenes"][0]["dialogue"]["speakers"][1]["photo"] = names["sam.png"]
        good = convert.storyboard_to_film(parse_storyboard(board).model_dump(exclude_unset=True))
        for turn, field, value, words in [
                (1, "end", 0.52, "0.52 s must be after start 0.55 s"),
                (2, "end", 1.3, "would be frames 14..20 of the dialogue, 7 frames at 16 fps"),
                (2, "speaker", "bob", "'bob' is not a speaker of this dialogue")]:
            film = pb.Film()
            film.CopyFrom(good)
            setattr(film.scenes[0].dialogue.turns[turn], field, value)
            with pytest.raises(InvalidArgumentError) as err:
                c.call("CreateFilm", pb.CreateFilmRequest(film=film))
            (path, message), = err.value.violations
            assert path == f"film.scenes[0].dialogue.turns[{turn}].{field}"
            assert words in message, message
        assert c.call("CreateFilm", pb.CreateFilmRequest(film=good)).name  # the same, valid
        # a track that ends before the last turn: only the server's media check can tell
        with pytest.raises(InvalidArgumentError) as err:
            c.submit(dialogue_board("short.flac"), base_dir=files)
        (path, message), = err.value.violations
        assert path == "film.scenes[0].dialogue.turns[2].end"
        short = f"media/{hashlib.sha256((files / 'short.flac').read_bytes()).hexdigest()}"
        assert f"mira's turn ends at 1.4 s, but {short} has 1.2 s of audio" in message
