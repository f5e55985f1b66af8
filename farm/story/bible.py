"""The character bible: which scenes name which characters, and the prompt a scene renders.

Rules (deterministic; no LLM involved):

- A scene names a character when its `characters` lists the id, or when its text (the original
  prompt and, if extended, the extension) contains the character's name or id as a whole
  word, case-insensitively; an id's `_` also matches a space (`old_tom` ~ "old tom").
  Descriptions are not searched, so one character's description never pulls in another.
- The scene's prompt is its text, then one sentence per named character in bible order,
  `<Name>: <description>.` (the description verbatim), then `Style: <style>.` if the film
  has a style.
- The scene's `characters` becomes every named id (bible order) and its `references` the
  named characters' reference images (bible order, each once): what conditioning consumes.
- Rendering (farm.spec.characters) brings in the characters a scene lists with the same
  composition; a description already in the prompt is not added again, so a finished
  storyboard renders the prompt it shows.
"""

from __future__ import annotations

# The composition is the spec's (farm.spec.characters): rendering brings a scene's
# characters in with the same code, so the writer and the renderer compose one way.
from farm.spec.characters import (
    ScenePrompt,
    aliases,
    compose,
    description_sentence,
    mentions,
    named,
    sentence,
)

__all__ = ["ScenePrompt", "aliases", "compose", "description_sentence", "mentions", "named",
           "sentence", "unique_ids"]


def unique_ids(ids: list[str], max_len: int = 32) -> list[str]:
    """Ids made unique in order: a repeated id gets `_2`, `_3`, ... (within max_len)."""
    seen: set[str] = set()
    out = []
    for cid in ids:
        new, n = cid, 1
        while new in seen:
            n += 1
            new = f"{cid[:max_len - len(str(n)) - 1]}_{n}"
        seen.add(new)
        out.append(new)
    return out
