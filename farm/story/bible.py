"""The character bible: which scenes name which characters, and the prompt a scene renders.

Rules (deterministic; no LLM involved):

- A scene names a character when its `cast` lists the id, or when its text (the original
  prompt and, if extended, the extension) contains the character's name or id as a whole
  word, case-insensitively; an id's `_` also matches a space (`old_tom` ~ "old tom").
  Descriptions are not searched, so one character's description never pulls in another.
- The scene's prompt is its text, then one sentence per named character in bible order,
  `<Name>: <description>.` (the description verbatim), then `Style: <style>.` if the film
  has a style.
- The scene's `cast` becomes every named id (bible order) and its `references` the named
  characters' reference images (bible order, each once): what conditioning consumes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from farm.spec.storyboard import Character


@dataclass(frozen=True, slots=True)
class ScenePrompt:
    """What one scene renders, and the bookkeeping that explains it."""

    prompt: str
    cast: tuple[str, ...]
    references: tuple[str, ...]


def aliases(ch: Character) -> list[str]:
    """The words a prompt may name the character by."""
    words = [ch.id, ch.id.replace("_", " ")] + ([ch.name] if ch.name else [])
    return sorted({w.strip() for w in words if w.strip()}, key=len, reverse=True)


def mentions(text: str, ch: Character) -> bool:
    """Whether `text` names the character (whole words, any case)."""
    alt = "|".join(re.escape(a) for a in aliases(ch))
    return re.search(rf"(?<!\w)(?:{alt})(?!\w)", text, flags=re.IGNORECASE) is not None


def named(characters: Iterable[Character], texts: Iterable[str],
          cast: Iterable[str] = ()) -> list[Character]:
    """The characters a scene names, in bible order."""
    joined = "\n".join(texts)
    explicit = set(cast)
    return [ch for ch in characters if ch.id in explicit or mentions(joined, ch)]


def sentence(text: str) -> str:
    """`text` stripped, ending with a full stop unless it ends with . ! or ?."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def description_sentence(ch: Character) -> str:
    return sentence(f"{ch.name or ch.id}: {ch.description.strip()}")


def compose(text: str, characters: list[Character], cast: Iterable[str] = (),
            style: str | None = None, searched: Iterable[str] = ()) -> ScenePrompt:
    """The scene's prompt: `text`, the named characters' descriptions, the style.

    `searched` are further texts that may name characters (the original prompt when `text`
    is its extension)."""
    who = named(characters, [text, *searched], cast)
    parts = [sentence(text)] + [description_sentence(ch) for ch in who]
    if style and style.strip():
        parts.append(sentence(f"Style: {style.strip()}"))
    refs: list[str] = []
    for ch in who:
        refs += [r for r in ch.references if r not in refs]
    return ScenePrompt(" ".join(parts), tuple(ch.id for ch in who), tuple(refs))


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
