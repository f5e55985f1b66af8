"""Reading a storyboard document safely: whatever the bytes are, the answer is a parsed
document or a SpecError, never a crash, a hang or a memory blow-up.

Guards (all configurable by the caller through `Limits`):
- size: documents larger than max_document_bytes are refused before parsing;
- YAML: a restricted safe loader that refuses aliases (anchors/aliases are how a small
  "billion laughs" document expands into gigabytes) and nesting deeper than max_depth;
- JSON: nesting deeper than max_depth is refused before json.loads recurses into it.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from farm.spec.errors import FieldError, SpecError

MAX_DOCUMENT_BYTES = 1 << 20
MAX_DEPTH = 32


class _Loader(yaml.SafeLoader):
    """SafeLoader without aliases and with a depth limit."""

    max_depth = MAX_DEPTH

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a storyboard", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > self.max_depth:
                raise yaml.composer.ComposerError(
                    None, None, f"nesting deeper than {self.max_depth} levels",
                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_document(text: str, suffix: str = ".yaml", *, max_bytes: int = MAX_DOCUMENT_BYTES,
                   max_depth: int = MAX_DEPTH) -> Any:
    """YAML (a superset of JSON) or strict JSON for `.json` files."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise SpecError([FieldError("", f"document is {size} bytes; the limit is {max_bytes}")])
    kind = suffix.lstrip(".") or "YAML"
    try:
        if suffix == ".json":
            _check_json_depth(text, max_depth)
            return json.loads(text)
        loader = _Loader(text)
        loader.max_depth = max_depth
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        raise SpecError([FieldError("", f"not valid {kind}: {_short(exc)}")]) from None


def _check_json_depth(text: str, max_depth: int) -> None:
    """Nesting depth of JSON text (brackets outside strings), checked without recursion."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise ValueError(f"nesting deeper than {max_depth} levels")
        elif ch in "]}":
            depth -= 1


def _short(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."
