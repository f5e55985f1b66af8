"""The LLM's schemas: narrowed from the storyboard's, and every document they admit becomes
a valid storyboard (checked with the code `reelfarm validate` runs). No LLM, no vLLM."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm.spec.profiles import PROFILES, T2V_A14B, TI2V_5B
from farm.spec.storyboard import Character, Storyboard, load_storyboard
from farm.story import schema
from farm.story.brief import Brief, Settings
from farm.story.writer import StoryError, ask, write_storyboard
from tests.story.strategies import SchemaLlm, from_schema

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BIBLE = (Character(id="mira", name="Mira", description="a keeper with a grey braid"),
         Character(id="old_harbor", description="a stone harbor with red boats"))


def stage_schemas():
    return {
        "characters": schema.characters_schema(3),
        "shots": schema.shots_schema(["s010", "s020", "s030"], schema.frame_choices(T2V_A14B),
                                     ["mira", "old_harbor"]),
        "shots-fixed": schema.shots_schema(["s010"], [33], []),
        "extension": schema.extension_schema(),
    }


def test_frame_choices_are_the_families_4k_plus_1_counts_up_to_one_window():
    assert schema.frame_choices(T2V_A14B) == list(range(5, 82, 4))
    assert schema.frame_choices(TI2V_5B)[-1] == 121
    assert schema.frame_choices(T2V_A14B, fixed=33) == [33]


def test_stage_properties_are_storyboard_fields():
    shots = stage_schemas()["shots"]
    sb = Storyboard.model_json_schema()
    assert set(shots["properties"]) <= set(sb["properties"])
    scene = shots["properties"]["scenes"]["prefixItems"][0]["properties"]
    assert set(scene) <= set(sb["$defs"]["SceneSpec"]["properties"])
    assert [s["properties"]["id"] for s in shots["properties"]["scenes"]["prefixItems"]] == [
        {"const": "s010"}, {"const": "s020"}, {"const": "s030"}]
    assert scene["frames"] == {"enum": list(range(5, 82, 4))}
    chars = stage_schemas()["characters"]["properties"]["characters"]["items"]["properties"]
    assert set(chars) <= set(sb["$defs"]["Character"]["properties"])


def test_narrowing_refuses_values_the_storyboard_rejects():
    with pytest.raises(ValueError):
        schema.const(schema.base("SceneSpec", "id"), "Bad Id")
    with pytest.raises(ValueError):
        schema.one_of({"type": "integer", "minimum": 1}, [5, 0])
    with pytest.raises(ValueError):
        schema.obj("SceneSpec", {"no_such_field": {"const": 1}})


def test_no_string_pattern_has_a_repetition_above_xgrammars_limit():
    text = json.dumps(schema.for_llm(stage_schemas()))
    import re
    counts = [int(n) for n in re.findall(r"\{0,(\d+)\}", text)]
    assert counts and max(counts) <= 100
    assert "minLength" not in text and "maxLength" not in text  # pattern + length: unsupported


@pytest.mark.parametrize("name", ["characters", "shots", "shots-fixed", "extension"])
@FAST
@given(data=st.data())
def test_every_admitted_document_conforms_and_fits_its_token_budget(name, data):
    full = stage_schemas()[name]
    doc = data.draw(from_schema(schema.for_llm(full)))
    jsonschema.Draft202012Validator(schema.for_llm(full)).validate(doc)
    assert schema.conforms(full, doc) == []
    spaced = json.dumps(doc, separators=(", ", ": "), ensure_ascii=False).encode()
    assert len(spaced) <= schema.max_bytes(full)


@FAST
@given(data=st.data(), n=st.integers(1, 4), invent=st.booleans(), extend=st.booleans(),
       family=st.sampled_from(sorted(PROFILES)))
def test_any_answers_under_the_schemas_make_a_valid_storyboard(tmp_path_factory, data, n,
                                                               invent, extend, family):
    out = tmp_path_factory.mktemp("sb")
    llm = SchemaLlm(data)
    brief = Brief(logline="a keeper saves a ship", scenes=n, style="noir", extend_prompts=extend,
                  characters=() if invent else BIBLE, max_characters=3)
    model = "tiny" if family == "t2v-a14b" else f"tiny-{family}"
    if PROFILES[family].requires_image:
        return  # image-to-video films need first frames, which a logline does not give
    text = write_storyboard(llm, brief, PROFILES[family], Settings(16, 64, 64, model), out)
    (out / "film.yaml").write_text(text, encoding="utf-8")
    board = load_storyboard(out / "film.yaml")
    from farm.cli.common import load_source

    film = load_source(out / "film.yaml").film  # what `reelfarm validate` checks
    assert [s.id for s in film.scenes] == [f"s{10 * (i + 1):03d}" for i in range(n)]
    assert all(s.original_prompt for s in board.scenes)
    assert board.direct.extend_prompts is extend
    assert {r.name for r in llm.requests} == ({"characters"} if invent else set()) | {"shots"} | (
        {"extension"} if extend else set())


def test_an_answer_outside_the_schema_is_refused():
    class Ignoring:  # a server that ignores response_format
        def complete(self, requests):
            return ['{"title": "x", "scenes": [{"id": "s010", "prompt": "p", "frames": 18}]}']

    with pytest.raises(StoryError, match="frames.*18 is not one of"):
        ask(Ignoring(), "shots", schema.shots_schema(["s010"], [17], []), [[]])
    with pytest.raises(StoryError, match="not JSON"):
        ask(type("Cut", (), {"complete": lambda self, r: ['{"title": "x", "sce']})(),
            "shots", schema.shots_schema(["s010"], [17], []), [[]])
