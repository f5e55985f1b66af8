"""The character bible and the extension bookkeeping (pure: no LLM, no vLLM)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import yaml

from farm.spec.errors import SpecError
from farm.spec.profiles import T2V_A14B
from farm.spec.storyboard import Character, parse_storyboard
from farm.story.bible import compose, mentions, named, unique_ids
from farm.story.writer import finish, to_yaml

MIRA = Character(id="mira", name="Mira Holm", description="a keeper with a grey braid",
                 references=["refs/mira.png"])
HARBOR = Character(id="old_harbor", description="a stone harbor with red boats",
                   references=["refs/harbor.png", "refs/mira.png"])


@pytest.mark.parametrize("text, who", [
    ("Mira Holm climbs the stairs", ["mira"]),
    ("mira holm's lamp", ["mira"]),
    ("MIRA waves", ["mira"]),                       # the id, any case
    ("boats in the old harbor at dawn", ["old_harbor"]),   # id with '_' as a space
    ("the old_harbor, then Mira", ["mira", "old_harbor"]),  # bible order, not text order
    ("Miranda walks; admiral", []),                 # whole words only
    ("an empty beach", []),
])
def test_mentions_are_whole_words_of_name_or_id(text, who):
    assert [c.id for c in named([MIRA, HARBOR], [text])] == who


def test_explicit_cast_counts_even_unnamed():
    assert [c.id for c in named([MIRA, HARBOR], ["she climbs"], cast=["old_harbor"])] == [
        "old_harbor"]
    assert mentions("Mira", MIRA) and not mentions("Mirador", MIRA)


def test_compose_appends_descriptions_verbatim_in_bible_order_then_style():
    out = compose("Old harbor at dawn, Mira runs", [MIRA, HARBOR], style="noir")
    assert out.prompt == ("Old harbor at dawn, Mira runs. Mira Holm: a keeper with a grey braid. "
                          "old_harbor: a stone harbor with red boats. Style: noir.")
    assert out.cast == ("mira", "old_harbor")
    assert out.references == ("refs/mira.png", "refs/harbor.png")  # each once
    assert compose("an empty beach!", [MIRA], style=None).prompt == "an empty beach!"


def test_searched_texts_name_characters_too():
    # An extension that no longer names Mira still gets her description: the original did.
    out = compose("a figure on the stairs", [MIRA], searched=["Mira climbs"])
    assert "a keeper with a grey braid" in out.prompt and out.cast == ("mira",)


def test_unique_ids_suffix_repeats_in_order():
    assert unique_ids(["tom", "tom", "ann", "tom"]) == ["tom", "tom_2", "ann", "tom_3"]
    long = "a" * 32
    assert [len(i) <= 32 for i in unique_ids([long, long])] == [True, True]
    assert len(set(unique_ids([long, long, long]))) == 3


def board(extend=False, **scene0):
    return parse_storyboard({
        "title": "Storm", "fps": 16, "width": 64, "height": 64,
        "scenes": [{"id": "s010", "prompt": "Mira Holm lights the lamp", "frames": 17, **scene0},
                   {"id": "s020", "prompt": "waves hit the old harbor", "frames": 9},
                   {"id": "s030", "prompt": "a gull in the wind", "frames": 9}],
        "characters": [MIRA.model_dump(), HARBOR.model_dump()],
        "direct": {"extend_prompts": extend, "style": "grainy"},
    })


class Scripted:
    """An LLM whose extension answers are fixed (index in every field)."""

    def __init__(self):
        self.calls = 0

    def complete(self, requests):
        self.calls += 1
        return [json.dumps({"subject": f"subject {i}", "motion": f"motion {i}",
                            "camera": f"dolly {i}", "lighting": f"lamp {i}"})
                for i, _ in enumerate(requests)]


def test_finish_keeps_originals_and_injects_the_bible_without_extension():
    data = finish(board(), llm=None)
    s = data["scenes"]
    assert [x["original_prompt"] for x in s] == ["Mira Holm lights the lamp",
                                                 "waves hit the old harbor", "a gull in the wind"]
    assert "a keeper with a grey braid" in s[0]["prompt"] and s[0]["characters"] == ["mira"]
    assert "a stone harbor" in s[1]["prompt"] and "grey braid" not in s[1]["prompt"]
    assert "characters" not in s[2] and "references" not in s[2]
    assert s[1]["references"] == ["refs/harbor.png", "refs/mira.png"]
    assert all(x["prompt"].endswith("Style: grainy.") for x in s)


def test_extension_replaces_the_text_and_keeps_the_original_beside_it():
    llm = Scripted()
    data = finish(board(extend=True), llm)
    s0 = data["scenes"][0]
    assert s0["original_prompt"] == "Mira Holm lights the lamp"
    assert s0["prompt"].startswith("subject 0. motion 0. Camera: dolly 0. Lighting: lamp 0. "
                                   "Mira Holm: a keeper with a grey braid.")
    assert llm.calls == 1  # one batch: every scene at once


def test_finishing_again_is_stable(tmp_path):
    (tmp_path / "refs").mkdir()
    for f in ("mira.png", "harbor.png"):
        (tmp_path / "refs" / f).write_bytes(b"png")
    once = to_yaml(finish(board(extend=True), Scripted()), T2V_A14B, tmp_path)
    again_board = parse_storyboard(yaml.safe_load(once))
    twice = to_yaml(finish(again_board, Scripted()), T2V_A14B, tmp_path)
    assert once == twice


def test_extension_without_an_llm_is_an_error_not_a_silent_skip():
    from farm.story.writer import StoryError

    with pytest.raises(StoryError, match="extend_prompts"):
        finish(board(extend=True), llm=None)


def test_storyboard_checks_the_bible():
    with pytest.raises(SpecError) as err:
        parse_storyboard({"title": "t", "fps": 16, "width": 64, "height": 64,
                          "scenes": [{"id": "a", "prompt": "p", "frames": 5, "cast": ["bob"]}],
                          "characters": [{"id": "ann", "description": "d"},
                                         {"id": "ann", "description": "e"}]})
    assert {e.path for e in err.value.errors} == {"characters[1].id", "scenes[0].cast[0]"}


def test_to_yaml_refuses_missing_reference_images(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        to_yaml(finish(board(), None), T2V_A14B, tmp_path)


def test_rendering_reads_only_the_prompt_of_the_story_fields():
    from farm.spec.film import resolve_film

    data = finish(board(), None)
    # Reference images are a rendering input of the families that take them (VACE,
    # Animate); a text-to-video storyboard from `direct` names none (see to_yaml).
    data["scenes"] = [{k: v for k, v in s.items() if k != "references"} for s in data["scenes"]]
    plain = {k: v for k, v in data.items() if k not in ("characters", "direct")}
    plain["scenes"] = [{k: v for k, v in s.items()
                        if k not in ("original_prompt", "characters", "references")}
                       for s in data["scenes"]]
    with_story = resolve_film(parse_storyboard(data), T2V_A14B)
    # The scenes record their characters; the descriptions are in the prompt already.
    assert [u.id for u in with_story.scenes[0].characters] == ["mira"]
    unnamed = tuple(replace(s, characters=()) for s in with_story.scenes)
    assert replace(with_story, scenes=unnamed) == resolve_film(parse_storyboard(plain), T2V_A14B)
    assert with_story.scenes[0].prompt == data["scenes"][0]["prompt"]
