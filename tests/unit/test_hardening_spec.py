"""Hostile storyboards: whatever a file holds (binary junk, deep nesting, alias bombs,
huge numbers, wrong types, unicode, empty), reading it gives a document or a SpecError
listing the problems by field path, never another exception, a hang or a blow-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm.spec.document import parse_document
from farm.spec.errors import SpecError
from farm.spec.storyboard import load_storyboard, parse_storyboard

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers()
                    | st.text(max_size=30), lambda children: st.lists(children, max_size=5)
                    | st.dictionaries(st.text(max_size=10), children, max_size=5), max_leaves=40)


def only_spec_errors(fn, *args):
    try:
        return fn(*args)
    except SpecError as exc:
        assert exc.errors and all(isinstance(e.message, str) for e in exc.errors)
        return None


@SETTINGS
@given(st.binary(max_size=2000))
def test_any_bytes_in_a_file(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("f") / "film.yaml"
    path.write_bytes(data)
    only_spec_errors(load_storyboard, path)


@SETTINGS
@given(st.text(max_size=2000), st.sampled_from([".yaml", ".json"]))
def test_any_text_as_yaml_or_json(text, suffix):
    only_spec_errors(parse_document, text, suffix)


@SETTINGS
@given(JSON)
def test_any_json_value_as_a_storyboard(value):
    only_spec_errors(parse_storyboard, value)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["title", "fps", "width", "height", "model", "steps",
                                        "shift", "solver", "scenes", "window", "overlap"]),
                       JSON, max_size=11))
def test_any_values_in_the_right_fields(value):
    only_spec_errors(parse_storyboard, value)


@pytest.mark.parametrize("text,suffix,needle", [
    ("[" * 100_000 + "]" * 100_000, ".json", "nesting deeper than 32"),
    ("- " * 5000 + "x", ".yaml", "nesting deeper than 32"),
    ("a: &a [1,2,3,4,5,6,7,8,9]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n", ".yaml", "aliases"),
    ("x" * (2 << 20), ".yaml", "the limit is 1048576"),
    ("!!python/object/apply:os.system ['true']", ".yaml", "could not determine a constructor"),
])
def test_hostile_documents_are_refused_with_the_reason(text, suffix, needle):
    with pytest.raises(SpecError) as info:
        parse_document(text, suffix)
    assert needle in str(info.value)


def test_validate_never_prints_a_traceback(tmp_path):
    files = {
        "junk.yaml": bytes(range(256)) * 8,
        "nest.json": b"[" * 200_000 + b"]" * 200_000,
        "big.yaml": b"title: t\nfps: 1e400\nwidth: 99999999999999999999999999\nheight: -3\n"
                    b"scenes: [{id: 'x', prompt: \"a\\u0000b\", frames: 1e309}]\n",
        "empty.yaml": b"",
        "list.json": json.dumps([1, 2, 3]).encode(),
        "timeline.otio": bytes(range(200)),
    }
    script = Path(sys.executable).parent / "reelfarm"
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        done = subprocess.run([str(script), "validate", str(tmp_path / name)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout, (name, done.stderr)
