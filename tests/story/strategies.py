"""Hypothesis strategies for the JSON schemas the story writer sends: every document a
schema admits (for the keywords those schemas use; any other keyword is an error here, so
a schema that grows new keywords fails these tests until they are covered)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

_KNOWN = {"type", "pattern", "x-max-chars", "const", "enum", "properties", "required",
          "additionalProperties", "prefixItems", "items", "minItems", "maxItems"}


def from_schema(s: dict[str, Any]) -> st.SearchStrategy:
    unknown = set(s) - _KNOWN
    if unknown:
        raise ValueError(f"strategy does not cover {sorted(unknown)}")
    if "const" in s:
        return st.just(s["const"])
    if "enum" in s:
        return st.sampled_from(s["enum"])
    kind = s["type"]
    if kind == "string":
        return st.from_regex(s["pattern"], fullmatch=True)
    if kind == "object":
        return st.fixed_dictionaries({k: from_schema(v) for k, v in s["properties"].items()})
    if kind == "array":
        if "prefixItems" in s:
            return st.tuples(*(from_schema(v) for v in s["prefixItems"])).map(list)
        return st.lists(from_schema(s["items"]), min_size=s.get("minItems", 0),
                        max_size=s["maxItems"])
    raise ValueError(f"no strategy for {s}")


class SchemaLlm:
    """An LLM that answers every request with an arbitrary document of its schema, drawn by
    hypothesis (the weakest possible model under structured output)."""

    def __init__(self, data: st.DataObject):
        self.data = data
        self.requests: list = []

    def complete(self, requests) -> list[str]:
        self.requests += requests
        return [json.dumps(self.data.draw(from_schema(r.schema), label=r.name)) for r in requests]

    def close(self) -> None:
        pass
