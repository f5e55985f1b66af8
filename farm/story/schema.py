"""The JSON schemas the LLM writes under (structured output), narrowed from the storyboard's.

Each stage's schema is cut out of `Storyboard.model_json_schema()`: the same property names
and types, only narrower, so that every document the grammar lets the LLM emit assembles
into a valid storyboard:

- strings: one printable line (no quotes, backslashes or control characters, so no JSON
  escapes), a non-space first character and a length bound; the bound also bounds the
  tokens the answer can take (`max_tokens`);
- scene ids: fixed per position (`prefixItems` with a `const`), so they are valid and unique;
- frames: one value fixed by the command line, or an `enum` of the 4k+1 counts the model
  family renders in one window;
- characters: an `enum` of the bible's ids (duplicates are the one thing a schema cannot forbid
  here; `writer` drops them);
- everything the command line fixes (fps, size, model, seeds, steps) is not asked for at all.

xgrammar (vLLM's default backend) rejects a string `pattern` together with `minLength` /
`maxLength`, so lengths live in the pattern's quantifiers (runs of at most 100).
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from farm.spec.frames import is_valid_frame_count
from farm.spec.profiles import ModelProfile
from farm.spec.storyboard import Storyboard

# Characters a text field may hold: anything printable except '"' and '\'.
_BODY = r'[^"\\\x00-\x1f\x7f-\x9f]'
_FIRST = r'[^ "\\\x00-\x1f\x7f-\x9f]'
# Worst-case UTF-8 bytes of one character (tokens are at least one byte each).
_BYTES_PER_CHAR = 4

TITLE_MAX, PROMPT_MAX, NAME_MAX, DESCRIPTION_MAX, CHARACTER_ID_MAX = 80, 300, 32, 300, 24
EXTENSION_FIELDS = {"subject": 240, "motion": 160, "camera": 120, "lighting": 120}


@cache
def _storyboard_schema() -> dict[str, Any]:
    return Storyboard.model_json_schema()


def base(*path: str) -> dict[str, Any]:
    """The storyboard schema of a field, e.g. base("SceneSpec", "prompt") (null branch dropped)."""
    root = _storyboard_schema()
    model = root if path[0] == "Storyboard" else root["$defs"][path[0]]
    schema = model["properties"][path[1]] if len(path) > 1 else model
    return _resolve(_non_null(schema))


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return base(schema["$ref"].rsplit("/", 1)[-1])
    return schema


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in schema.items() if k not in ("anyOf", "default", "title")}
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) > 1:
        raise ValueError(f"cannot narrow a union of {len(branches)} types: {schema}")
    if branches:
        out.update(_resolve(branches[0]))
    return out


def text(field: dict[str, Any], max_len: int, first: str = _FIRST,
         body: str = _BODY) -> dict[str, Any]:
    """A string field narrowed to 1..max_len characters of the given classes."""
    if field.get("type") != "string":
        raise ValueError(f"not a string field: {field}")
    if field.get("minLength", 0) > 1 or field.get("maxLength", max_len) < max_len:
        raise ValueError(f"length 1..{max_len} is outside the field's bounds: {field}")
    if "pattern" in field and not _same_or_narrower(field["pattern"], first, body):
        raise ValueError(f"cannot narrow pattern {field['pattern']!r} to {first}{body}")
    return {"type": "string", "pattern": f"^{first}{_repeat(body, max_len - 1)}$",
            "x-max-chars": max_len}


def _repeat(cls: str, n: int) -> str:
    """`cls{0,n}` as runs of at most 100: xgrammar 0.2.8 fails to compile a bounded
    repetition above 128 (a check in its grammar functor), but takes several in a row."""
    runs = [100] * (n // 100) + ([n % 100] if n % 100 else [])
    return "".join(f"{cls}{{0,{k}}}" for k in runs)


def _same_or_narrower(pattern: str, first: str, body: str) -> bool:
    # Only the id patterns of the storyboard are narrowed: check on their alphabets.
    sample = "".join(chr(c) for c in range(32, 127))
    ours = {c for c in sample if re.fullmatch(first, c) or re.fullmatch(body, c)}
    return all(re.fullmatch(pattern, c + "a") or re.fullmatch(pattern, "a" + c) for c in ours)


def const(field: dict[str, Any], value: Any) -> dict[str, Any]:
    return one_of(field, [value])


def one_of(field: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    """An enum narrowed from `field`; every value is checked against the field's rules."""
    for v in values:
        _check_value(field, v)
    return {"const": values[0]} if len(values) == 1 else {"enum": list(values)}


def _check_value(field: dict[str, Any], v: Any) -> None:
    kind = field.get("type")
    ok = {"integer": isinstance(v, int), "string": isinstance(v, str)}.get(kind, True)
    if isinstance(v, int):
        ok = ok and v >= field.get("minimum", v) and v <= field.get("maximum", v)
    if isinstance(v, str):
        ok = ok and len(v) >= field.get("minLength", 0) and len(v) <= field.get("maxLength", len(v))
        ok = ok and (not field.get("pattern") or re.search(field["pattern"], v) is not None)
    if not ok:
        raise ValueError(f"{v!r} does not satisfy {field}")


def obj(model: str, props: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An object narrowed from a storyboard model: only `props`, all required, no others."""
    known = base(model)["properties"]
    unknown = sorted(set(props) - set(known))
    if unknown:
        raise ValueError(f"{model} has no field(s) {', '.join(unknown)}")
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


def frame_choices(profile: ModelProfile, fixed: int | None = None) -> list[int]:
    """Frame counts the LLM may choose: `fixed`, or every 4k+1 count from 5 up to one
    window of the family (81 for A14B, 121 for TI2V-5B)."""
    if fixed is not None:
        return [fixed]
    return [n for n in range(5, profile.frames + 1)
            if is_valid_frame_count(n, profile.vae_temporal)]


def cast_schema(ids: list[str]) -> dict[str, Any]:
    item = base("SceneSpec", "characters")["items"]
    return {"type": "array", "items": one_of(item, ids), "maxItems": len(ids)}


def characters_schema(max_characters: int) -> dict[str, Any]:
    """Stage 1: the bible the LLM invents ({"characters": [...]})."""
    ch = base("Character")["properties"]
    item = obj("Character", {
        "id": text(ch["id"], CHARACTER_ID_MAX, "[a-z]", "[a-z0-9_]"),
        "name": text(_non_null(ch["name"]), NAME_MAX, "[A-Za-z]", "[A-Za-z0-9 '.-]"),
        "description": text(_non_null(ch["description"]), DESCRIPTION_MAX),
    })
    return obj("Storyboard", {"characters": {"type": "array", "items": item,
                                             "minItems": 0, "maxItems": max_characters}})


def shots_schema(scene_ids: list[str], frames: list[int], cast_ids: list[str]) -> dict[str, Any]:
    """Stage 2: title and one prompt per scene ({"title", "scenes": [...]}), ids fixed."""
    sc = base("SceneSpec")["properties"]
    scenes = []
    for sid in scene_ids:
        props = {"id": const(sc["id"], sid), "prompt": text(sc["prompt"], PROMPT_MAX),
                 "frames": one_of(_non_null(sc["frames"]), frames)}
        if cast_ids:
            props["characters"] = cast_schema(cast_ids)
        scenes.append(obj("SceneSpec", props))
    return obj("Storyboard", {
        "title": text(base("Storyboard", "title"), TITLE_MAX),
        "scenes": {"type": "array", "prefixItems": scenes, "items": False,
                   "minItems": len(scenes), "maxItems": len(scenes)},
    })


def extension_schema() -> dict[str, Any]:
    """Stage 3, per scene: a Wan-style prompt in four parts (composed into `prompt`)."""
    field = base("SceneSpec", "prompt")
    props = {k: text(field, n) for k, n in EXTENSION_FIELDS.items()}
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


def for_llm(schema: Any) -> Any:
    """The schema as sent (our bookkeeping keys, `x-...`, removed)."""
    if isinstance(schema, dict):
        return {k: for_llm(v) for k, v in schema.items() if not k.startswith("x-")}
    if isinstance(schema, list):
        return [for_llm(v) for v in schema]
    return schema


def max_bytes(schema: dict[str, Any]) -> int:
    """Upper bound of the UTF-8 size of any JSON document the schema admits (separators
    with a space each, as xgrammar may emit), hence of the tokens it takes."""
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else schema["enum"]
        return max(len(json.dumps(v)) for v in values)
    kind = schema.get("type")
    if kind == "string":
        return 2 + _BYTES_PER_CHAR * schema["x-max-chars"]
    if kind == "object":
        parts = [len(json.dumps(k)) + 2 + max_bytes(v) for k, v in schema["properties"].items()]
        return 2 + sum(parts) + 2 * max(0, len(parts) - 1)
    if kind == "array":
        items = [max_bytes(s) for s in schema.get("prefixItems", [])]
        if schema.get("items"):
            items += [max_bytes(schema["items"])] * (schema["maxItems"] - len(items))
        return 2 + sum(items) + 2 * max(0, len(items) - 1)
    raise ValueError(f"no size bound for {schema}")


def conforms(schema: dict[str, Any], value: Any, at: str = "") -> list[str]:
    """Problems of `value` under `schema` (the keywords above only): an LLM server may
    ignore `response_format`, so answers are checked here, not trusted."""
    where = at or "answer"
    if "const" in schema or "enum" in schema:
        allowed = [schema["const"]] if "const" in schema else schema["enum"]
        ok = any(value == v and type(value) is type(v) for v in allowed)
        return [] if ok else [f"{where}: {value!r} is not one of {allowed}"]
    kind = schema.get("type")
    if kind == "string":
        ok = isinstance(value, str) and re.search(schema["pattern"], value) is not None
        return [] if ok else [f"{where}: {value!r} is not a text of 1..{schema['x-max-chars']} "
                              "printable characters"]
    if kind == "object":
        return _conforms_object(schema, value, at)
    if kind == "array":
        return _conforms_array(schema, value, at)
    raise ValueError(f"cannot check {schema}")


def _conforms_object(schema: dict[str, Any], value: Any, at: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{at or 'answer'}: expected an object, got {type(value).__name__}"]
    props = schema["properties"]
    errors = [f"{at}.{k}".lstrip(".") + ": unexpected field" for k in value if k not in props]
    errors += [f"{at}.{k}".lstrip(".") + ": missing" for k in schema["required"] if k not in value]
    for k, sub in props.items():
        if k in value:
            errors += conforms(sub, value[k], f"{at}.{k}".lstrip("."))
    return errors


def _conforms_array(schema: dict[str, Any], value: Any, at: str) -> list[str]:
    if not isinstance(value, list):
        return [f"{at or 'answer'}: expected a list, got {type(value).__name__}"]
    lo, hi = schema.get("minItems", 0), schema.get("maxItems", len(value))
    if not lo <= len(value) <= hi:
        return [f"{at}: {len(value)} items, expected {lo}..{hi}"]
    prefix = schema.get("prefixItems", [])
    errors = []
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else schema.get("items")
        if not sub:
            return errors + [f"{at}[{i}]: unexpected item"]
        errors += conforms(sub, item, f"{at}[{i}]")
    return errors
