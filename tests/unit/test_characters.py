"""Recurring characters (farm.spec.characters): a scene's `characters:` brings the film's
character in as its family can (description into the prompt, images where the family takes
them, LoRAs into its adapters), says what the family cannot use, and errors name the scene,
the characters and the family."""

from __future__ import annotations

import pytest
import yaml

from farm.cli import main
from farm.media.provenance import film_record
from farm.spec.adapters import lora_names, rename_loras
from farm.spec.errors import SpecError
from farm.spec.profiles import profile_for
from farm.spec.serde import film_from_dict, film_to_dict
from farm.spec.storyboard import parse_storyboard
from farm.story.bible import compose
from farm.story.writer import finish, to_yaml
from tests.helpers import resolve_errors as errors_of
from tests.helpers import resolve_in as resolve

MARA = "a red circle with a soft edge"


@pytest.fixture
def files(tmp_path):
    for name in ("mara.png", "mara_side.png", "tom.png", "prop.png", "own.png", "pose.mp4",
                 "voice.flac", "mara.safetensors", "style.safetensors", "depth.mp4"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def mara(**kw) -> dict:
    return {"id": "mara", "name": "Mara", "description": MARA, **kw}


def board(scenes: list[dict], characters: list[dict], **film) -> dict:
    return {"title": "t", "fps": 16, "width": 64, "height": 64, "characters": characters,
            "scenes": [{"id": f"s{i}", "prompt": "it moves right", "frames": 17, **s}
                       for i, s in enumerate(scenes)], **film}


def test_the_description_joins_the_prompt_once_and_only_where_named(files):
    film = resolve(board([{"characters": ["mara"]}, {},
                          {"prompt": f"Mara moves. Mara: {MARA}.", "characters": ["mara"]}],
                         [mara()]), files)
    a, b, c = film.scenes
    assert a.prompt == f"it moves right. Mara: {MARA}."
    assert b.prompt == "it moves right" and b.characters == ()  # a mention is not a listing
    assert c.prompt == f"Mara moves. Mara: {MARA}."               # held already: unchanged
    assert [(u.id, u.used, u.not_used) for u in a.characters] == [("mara", ("description",), "")]


def test_cast_is_read_as_characters_and_both_together_are_an_error(files):
    old = parse_storyboard(board([{"cast": ["mara"]}], [mara()]))
    assert old.scenes[0].characters == ["mara"]
    with pytest.raises(SpecError) as info:
        parse_storyboard(board([{"cast": ["mara"], "characters": ["mara"]}], [mara()]))
    assert "`cast` is its former name" in str(info.value)
    with pytest.raises(SpecError) as info:
        parse_storyboard(board([{"characters": ["tom"]}], [mara()]))
    [err] = info.value.errors
    assert err.path == "scenes[0].characters[0]" and "known: mara" in err.message


def test_a_storyboard_the_writer_finished_renders_the_prompt_it_shows(files):
    data = board([{"prompt": "Mara moves right"}, {"prompt": "a square moves up"}],
                 [mara(references=["mara.png"])], direct={"style": "flat colours"})
    finished = finish(parse_storyboard(data), llm=None)
    assert finished["scenes"][0]["characters"] == ["mara"]
    written = yaml.safe_load(to_yaml(finished, profile_for("t2v-a14b"), files))
    film = resolve(written, files)
    assert [s.prompt for s in film.scenes] == [s["prompt"] for s in finished["scenes"]]
    assert film.scenes[0].prompt.count(MARA) == 1
    assert compose("Mara moves right", list(parse_storyboard(data).characters)).prompt == (
        f"Mara moves right. Mara: {MARA}.")


def test_character_loras_join_the_scene_adapters_after_the_films(files):
    data = board([{"characters": ["mara"]},
                  {"characters": ["mara"], "loras": [{"name": "mara.safetensors", "weight": 0}]},
                  {}],
                 [mara(loras=[{"name": "mara.safetensors", "weight": 0.9}])],
                 loras=[{"name": "style.safetensors", "weight": 0.5}])
    a, b, c = resolve(data, files).scenes
    assert [(x.name, x.weights) for x in a.adapters] == [("style.safetensors", (0.5, 0.5)),
                                                         ("mara.safetensors", (0.9, 0.9))]
    assert [x.name for x in b.adapters] == ["style.safetensors"]  # the scene turned it off
    assert [x.name for x in c.adapters] == ["style.safetensors"]  # not named: not loaded
    assert a.characters[0].used == ("description", "loras")
    parsed = parse_storyboard(data)
    assert lora_names(parsed) == ["style.safetensors", "mara.safetensors"]
    dumped = parsed.model_dump(exclude_unset=True)
    rename_loras(dumped, lambda raw: f"media/{raw}")
    assert dumped["characters"][0]["loras"][0]["name"] == "media/mara.safetensors"


def test_a_missing_character_lora_is_an_error_at_the_character(files):
    errors = errors_of(board([{"characters": ["mara"]}],
                             [mara(loras=[{"name": "gone.safetensors", "weight": 1}])]), files)
    assert list(errors) == ["characters[0].loras[0].name"]
    assert "no such file" in errors["characters[0].loras[0].name"]


def test_t2v_uses_the_description_and_says_the_images_are_not_used(files, capsys):
    data = board([{"characters": ["mara"]}], [mara(references=["mara.png"])])
    [use] = resolve(data, files).scenes[0].characters
    assert use.used == ("description",)
    assert use.not_used == ("t2v-a14b takes no images: 1 image (mara.png) not used "
                            "(its description reaches the prompt)")
    path = files / "film.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == ["scene 's0' characters: mara (description)", f"  note: mara: {use.not_used}"]


def test_vace_takes_every_image_after_the_scenes_own_references(files):
    data = board([{"characters": ["mara"], "references": ["prop.png", "mara"]},
                  {"characters": ["mara", "tom"], "references": ["prop.png"]}],
                 [mara(references=["mara.png", "mara_side.png"]),
                  {"id": "tom", "description": "a blue square", "references": ["tom.png"]}])
    a, b = resolve(data, files, "vace-a14b").scenes
    names = lambda s: [p.rsplit("/", 1)[-1] for p in s.inputs.references]  # noqa: E731
    assert names(a) == ["prop.png", "mara.png", "mara_side.png"]  # listed by id already: once
    assert names(b) == ["prop.png", "mara.png", "mara_side.png", "tom.png"]
    assert [u.used for u in b.characters] == [("description", "references")] * 2
    assert a.image is None  # no first_frame: the references only


def test_vace_refuses_more_references_than_it_takes_naming_who(files):
    data = board([{"characters": ["mara", "tom"], "references": ["prop.png", "own.png"]}],
                 [mara(references=["mara.png", "mara_side.png"]),
                  {"id": "tom", "description": "a blue square", "references": ["tom.png"]}])
    errors = errors_of(data, files, "vace-a14b")
    assert errors == {"scenes[0].characters": (
        "scene 's0': vace-a14b takes at most 4 reference images, the scene would have 5 "
        "(2 of its own + mara's 2 + tom's 1); give the scene's own `references:` to choose, "
        "or list fewer characters")}


@pytest.mark.parametrize("family", ["i2v-a14b", "ti2v-5b", "vace-a14b"])
def test_first_frame_opens_scenes_on_the_first_image_unless_the_scene_has_one(files, family):
    data = board([{"characters": ["mara"]}, {"characters": ["mara"], "image": "own.png"},
                  {"characters": ["mara"], "start_from": "s0"}],
                 [mara(references=["mara.png", "mara_side.png"], first_frame=True)])
    a, b, c = resolve(data, files, family).scenes
    assert a.image == str(files / "mara.png") and a.has_inputs
    assert b.image == str(files / "own.png") and c.image is None and c.start_from == "s0"
    assert "the scene's own `image` is" in b.characters[0].not_used
    assert f"`start_from: s0` is {family}'s first frame" in c.characters[0].not_used


def test_i2v_without_first_frame_notes_the_images_and_still_needs_an_image(files):
    data = board([{"characters": ["mara"], "image": "own.png"}, {"characters": ["mara"]}],
                 [mara(references=["mara.png"])])
    errors = errors_of(data, files, "i2v-a14b")
    assert list(errors) == ["scenes[1].image"] and "needs `image`" in errors["scenes[1].image"]
    [use] = resolve(board([{"characters": ["mara"], "image": "own.png"}],
                          [mara(references=["mara.png"])]), files, "i2v-a14b").scenes[0].characters
    assert "i2v-a14b takes no reference images" in use.not_used
    assert "`first_frame: true`" in use.not_used


def test_two_first_frame_characters_in_one_scene_are_an_error(files):
    data = board([{"characters": ["mara", "tom"]}],
                 [mara(references=["mara.png"], first_frame=True),
                  {"id": "tom", "description": "a blue square", "references": ["tom.png"],
                   "first_frame": True}])
    errors = errors_of(data, files, "i2v-a14b")
    assert errors["scenes[0].characters"] == (
        "scene 's0': i2v-a14b takes one first frame (`image`) per scene, and mara and tom "
        "each give one; give the scene's own `image:` to choose")
    assert list(errors) == ["scenes[0].characters", "scenes[0].image"]  # and it has none


def test_animate_takes_the_first_image_as_its_character_image(files):
    pose = {"pose_video": "pose.mp4"}
    data = board([{"characters": ["mara"], **pose},
                  {"characters": ["mara"], "references": ["own.png"], **pose}],
                 [mara(references=["mara.png", "mara_side.png"])])
    a, b = resolve(data, files, "animate-14b").scenes
    assert a.inputs.references == (str(files / "mara.png"),)
    assert a.characters[0].used == ("description", "references")
    assert a.characters[0].not_used == (
        "animate-14b takes one character image (`references`): its first image mara.png is "
        "used, 1 image (mara_side.png) not used")
    assert b.inputs.references == (str(files / "own.png"),)
    assert "the scene's own `references` is animate-14b's character image" in (
        b.characters[0].not_used)


def test_animate_refuses_two_characters_with_images(files):
    data = board([{"characters": ["mara", "tom"], "pose_video": "pose.mp4"}],
                 [mara(references=["mara.png"]),
                  {"id": "tom", "description": "a blue square", "references": ["tom.png"]}])
    message = errors_of(data, files, "animate-14b")["scenes[0].characters"]
    assert "animate-14b takes one character image" in message and "mara and tom" in message


def test_s2v_takes_the_first_image_as_the_reference_photo(files):
    data = board([{"characters": ["mara"], "audio": "voice.flac"}],
                 [mara(references=["mara.png"])])
    [s] = resolve(data, files, "s2v-14b").scenes
    assert s.image == str(files / "mara.png")
    assert s.characters[0].used == ("description", "image") and not s.characters[0].not_used


def test_the_record_and_the_job_store_keep_the_characters(files):
    data = board([{"characters": ["mara"]}, {}], [mara(references=["mara.png"])])
    film = resolve(data, files)
    assert film_from_dict(film_to_dict(film)) == film
    record = film_record(film, "tiny:0", [])
    assert record["scenes"][0]["characters"] == [
        {"id": "mara", "used": ["description"],
         "not_used": "t2v-a14b takes no images: 1 image (mara.png) not used "
                     "(its description reaches the prompt)"}]
    assert record["scenes"][1]["characters"] == []


def test_the_client_sends_the_characters_with_their_media_names(files):
    from farm.client.media import with_media_names

    board_ = parse_storyboard(board(
        [{"characters": ["mara"]}],
        [mara(references=["mara.png"], loras=[{"name": "mara.safetensors", "weight": 1}])]))
    names = {str((files / "mara.png").resolve()): "media/aa",
             str((files / "mara.safetensors").resolve()): "media/bb"}
    sent = parse_storyboard(with_media_names(board_, files, names))
    [ch] = sent.characters
    assert ch.references == ["media/aa"] and ch.loras[0].name == "media/bb"
    assert ch.description == MARA and sent.scenes[0].characters == ["mara"]


def test_first_frame_needs_an_image_and_means_nothing_without_a_first_frame(files):
    with pytest.raises(SpecError) as info:
        parse_storyboard(board([{}], [mara(first_frame=True)]))
    assert [e.path for e in info.value.errors] == ["characters[0].first_frame"]
    data = board([{"characters": ["mara"], "audio": "voice.flac"}],
                  [mara(references=["mara.png"], first_frame=True)])
    [use] = resolve(data, files, "s2v-14b").scenes[0].characters
    assert use.used == ("description", "image")
    assert use.not_used == ("s2v-14b has no first frame (it takes the reference photo (`image`)): "
                            "`first_frame: true` changes nothing")


def test_a_character_its_lora_carries_needs_no_description(files):
    """A character LoRA trained on the character's name (the toy's pip): the prompt names
    it and the LoRA draws it; no sentence is added. A character with nothing to bring is
    refused, naming it."""
    pip = {"id": "pip", "loras": [{"name": "mara.safetensors", "weight": 1.0}]}
    film = resolve(board([{"prompt": "pip moves right", "characters": ["pip"]}], [pip]), files)
    (s,) = film.scenes
    assert s.prompt == "pip moves right"
    assert [u.used for u in s.characters] == [("loras",)]
    assert [a.location for a in s.adapters] == [str(files / "mara.safetensors")]
    with pytest.raises(SpecError, match="character 'pip' needs a `description`, `references` "
                                        "or `loras`"):
        parse_storyboard(board([{"characters": ["pip"]}], [{"id": "pip"}]))
