"""Recurring characters: the film's `characters:` brought into every scene that names them
(pure; the story writer's bible, farm.story.bible, composes prompts with the same code).

    characters:                                       the film's bible, described once
      - id: mara
        name: Mara                                    optional: how prompts name her
        description: a red circle with a soft edge
        references: [refs/mara.png]                   optional images
        loras: [{name: loras/mara, weight: 1.0}]      optional adapters (farm.spec.adapters)
        first_frame: true                             optional: her first image opens scenes
    scenes:
      - {id: s010, prompt: Mara moves right, characters: [mara]}   (`cast:`, its old name)

What a family does with a named character (read from its profile, so a new family needs
nothing here):

    description  every family        `Mara: <description>.` after the prompt (bible order),
                                     unless the prompt already holds that sentence (as the
                                     storyboards `reelfarm direct` writes do)
    loras        every family        after the film's adapters; the scene's own replace
                                     them by name
    images       several references  every image, after the scene's own (VACE)
                 one reference       the first image, if the scene gives none (Animate)
                 reference photo     the first image as `image`, if the scene gives none (S2V)
                 first frame         the first image as `image` only with `first_frame: true`
                                     and no `image` / `start_from` of the scene's own
                                     (I2V, TI2V; VACE takes it as well as the references)
                 no images           not used (T2V)

Images a family cannot use are never dropped silently: the resolved scene records each
character's use and what was not used (`CharacterUse`), `reelfarm validate` prints it and
the manifest of every deliverable keeps it. What cannot work at all (two characters for a
one-character family, more references than the family takes) is an error naming the scene,
the characters and the family.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from farm.spec.adapters import Adapter, Locator, resolve_loras
from farm.spec.continuity import takes_first_frame
from farm.spec.errors import FieldError
from farm.spec.profiles import ModelProfile
from farm.spec.storyboard import Character, SceneSpec, Storyboard, is_reference_id


@dataclass(frozen=True, slots=True)
class ScenePrompt:
    """What the story writer composes for one scene, and the bookkeeping that explains it."""

    prompt: str
    cast: tuple[str, ...]
    references: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CharacterUse:
    """How one scene took one character (the resolved scene's record)."""

    id: str
    # "description", "references", "image", "loras": what reached the model.
    used: tuple[str, ...]
    # What the family could not use, and why ("": everything was used).
    not_used: str = ""


# -- prompt composition (shared with the story writer) -----------------------------------

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
    """The characters a scene names (listed in `cast`, or named in `texts`), in bible order."""
    joined = "\n".join(texts)
    explicit = set(cast)
    return [ch for ch in characters if ch.id in explicit or (joined and mentions(joined, ch))]


def sentence(text: str) -> str:
    """`text` stripped, ending with a full stop unless it ends with . ! or ?."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def description_sentence(ch: Character) -> str:
    """`Name: description.`; "" for a character without a description."""
    if ch.description is None:
        return ""
    return sentence(f"{ch.name or ch.id}: {ch.description.strip()}")


def with_descriptions(text: str, who: Sequence[Character]) -> str:
    """`text`, then the description sentence of each character it does not hold yet;
    `text` unchanged when it holds them all (composing twice changes nothing)."""
    missing = [d for d in map(description_sentence, who) if d and d not in text]
    return " ".join([sentence(text), *missing]) if missing else text


def compose(text: str, characters: list[Character], cast: Iterable[str] = (),
            style: str | None = None, searched: Iterable[str] = ()) -> ScenePrompt:
    """The story writer's prompt: `text`, the named characters' descriptions, the style.

    `searched` are further texts that may name characters (the original prompt when `text`
    is its extension)."""
    who = named(characters, [text, *searched], cast)
    prompt = with_descriptions(sentence(text), who)
    if style and style.strip():
        prompt = f"{prompt} {sentence(f'Style: {style.strip()}')}"
    refs: list[str] = []
    for ch in who:
        refs += [r for r in ch.references if r not in refs]
    return ScenePrompt(prompt, tuple(ch.id for ch in who), tuple(refs))


# -- bringing characters into a scene ----------------------------------------------------

def character_adapters(board: Storyboard, profile: ModelProfile, locator: Locator,
                       ) -> tuple[dict[str, list[Adapter]], list[FieldError]]:
    """Each character's resolved `loras:` (checked once, at `characters[k].loras`)."""
    out: dict[str, list[Adapter]] = {}
    errors: list[FieldError] = []
    for k, ch in enumerate(board.characters):
        out[ch.id], errs = resolve_loras(f"characters[{k}].loras", ch.loras, profile, locator)
        errors += errs
    return out, errors


def bring_in(i: int, spec: SceneSpec, board: Storyboard, profile: ModelProfile,
             ) -> tuple[SceneSpec, tuple[CharacterUse, ...], list[FieldError]]:
    """The scene as its family renders it with its characters (prompt, references, image
    filled in), how it took each one, and what cannot work. Ids were checked by
    parse_storyboard."""
    who = named(board.characters, [], spec.characters or ())
    if not who:
        return spec, (), []
    notes: dict[str, list[str]] = {ch.id: [] for ch in who}
    used: dict[str, list[str]] = {
        ch.id: (["description"] if ch.description else []) + (["loras"] if ch.loras else [])
        for ch in who}
    update, errors = _route_images(spec, board, profile, who, used, notes)
    update["prompt"] = with_descriptions(spec.prompt, who)
    uses = tuple(CharacterUse(ch.id, tuple(used[ch.id]), "; ".join(notes[ch.id])) for ch in who)
    return spec.model_copy(update=update), uses, [
        FieldError(f"scenes[{i}].characters", f"scene {spec.id!r}: {e}") for e in errors]


def _route_images(spec: SceneSpec, board: Storyboard, profile: ModelProfile,
                  who: list[Character], used: dict[str, list[str]],
                  notes: dict[str, list[str]]) -> tuple[dict[str, object], list[str]]:
    """The scene fields the characters' images fill in, as the family takes images (see
    the module's table), and the errors."""
    family, takes = profile.family, profile.conditioning
    with_images = [ch for ch in who if ch.references]
    first_frames = [ch for ch in with_images if ch.first_frame]
    update: dict[str, object] = {}
    errors: list[str] = []
    if "references" in takes and profile.max_references > 1:
        update["references"], err = _all_references(spec, board, profile, with_images, used)
        errors += [err] if err else []
    elif "references" in takes or ("image" in takes and not takes_first_frame(profile)):
        slot = "references" if "references" in takes else "image"
        value, err = _one_image(spec, slot, profile, with_images, used, notes)
        errors += [err] if err else []
        if value is not None:
            update[slot] = [value] if slot == "references" else value
        for ch in first_frames:
            notes[ch.id].append(f"{family} has no first frame (it takes the "
                                f"{_slot_name(slot, profile)}): "
                                "`first_frame: true` changes nothing")
    elif "image" not in takes:
        for ch in with_images:
            notes[ch.id].append(f"{family} takes no images: {_listed(ch.references)} not used"
                                + (" (its description reaches the prompt)" if ch.description
                                   else ""))
    else:
        for ch in with_images:
            if not ch.first_frame:
                notes[ch.id].append(
                    f"{family} takes no reference images and opens a scene on its own first "
                    f"frame: {_listed(ch.references)} not used (`first_frame: true` on the "
                    "character opens its scenes on its first image)")
    if takes_first_frame(profile):
        value, err = _one_image(spec, "image", profile, first_frames, used, notes)
        errors += [err] if err else []
        if value is not None:
            update["image"] = value
    return update, errors


def _all_references(spec: SceneSpec, board: Storyboard, profile: ModelProfile,
                    with_images: list[Character], used: dict[str, list[str]],
                    ) -> tuple[list[str] | None, str | None]:
    """Every image of every character after the scene's own references (each once), or the
    scene's own and an error when they are more than the family takes."""
    own = list(spec.references or ())
    expanded = _expand(own, board)
    extra = [ch for ch in with_images if any(r not in expanded for r in ch.references)]
    new = list(dict.fromkeys(r for ch in extra for r in ch.references if r not in expanded))
    for ch in with_images:
        used[ch.id].append("references")
    if len(expanded) + len(new) > profile.max_references:
        parts = [f"{len(expanded)} of its own"] * bool(expanded) + [
            f"{ch.id}'s {len([r for r in ch.references if r not in expanded])}" for ch in extra]
        return spec.references, (
            f"{profile.family} takes at most {profile.max_references} reference images, the "
            f"scene would have {len(expanded) + len(new)} ({' + '.join(parts)}); give the "
            "scene's own `references:` to choose, or list fewer characters")
    return (own + new) or spec.references, None


def _one_image(spec: SceneSpec, slot: str, profile: ModelProfile, candidates: list[Character],
               used: dict[str, list[str]], notes: dict[str, list[str]],
               ) -> tuple[str | None, str | None]:
    """The single image a family takes in `slot` (Animate's character image, S2V's
    reference photo, a first frame), from the one candidate character; None: the scene's
    own stays (or there is no candidate)."""
    if not candidates:
        return None, None
    family, what = profile.family, _slot_name(slot, profile)
    own = list(spec.references or ()) if slot == "references" else [spec.image] * bool(spec.image)
    if own or (slot == "image" and spec.start_from and takes_first_frame(profile)):
        given = f"`{slot}`" if own else f"`start_from: {spec.start_from}`"
        for ch in candidates:
            if ch.id in own or any(r in own for r in ch.references):
                used[ch.id].append(slot)
            else:
                notes[ch.id].append(f"the scene's own {given} is {family}'s {what}, "
                                    f"not {ch.references[0]}")
        return None, None
    if len(candidates) > 1:
        ids = " and ".join(ch.id for ch in candidates)
        return None, (f"{family} takes one {what} per scene, and {ids} each give one; "
                      f"give the scene's own `{slot}:` to choose")
    ch = candidates[0]
    used[ch.id].append(slot)
    if len(ch.references) > 1:
        notes[ch.id].append(f"{family} takes one {what}: its first image {ch.references[0]} is "
                            f"used, {_listed(ch.references[1:])} not used")
    return ch.references[0], None


def _slot_name(slot: str, profile: ModelProfile) -> str:
    if slot == "references":
        return "character image (`references`)"
    return "first frame (`image`)" if takes_first_frame(profile) else "reference photo (`image`)"


def _expand(entries: list[str], board: Storyboard) -> list[str]:
    """A scene's `references:` as image entries (ids expanded), each once."""
    by_id = {r.id: [r.image] for r in board.references}
    by_id |= {c.id: list(c.references) for c in board.characters}
    out = [img for e in entries
           for img in (by_id.get(e, [e]) if is_reference_id(e) else [e])]
    return list(dict.fromkeys(out))


def _listed(images: Sequence[str]) -> str:
    return f"{len(images)} image{'s' * (len(images) != 1)} ({', '.join(images)})"


def character_log(scenes: Iterable[Any]) -> list[str]:
    """What `reelfarm validate` and `render` print of resolved scenes (farm.spec.film.Scene):
    per scene naming characters, how it took each, then what its family could not use."""
    out = []
    for s in scenes:
        if s.characters:
            taken = ", ".join(f"{u.id} ({', '.join(u.used)})" for u in s.characters)
            out.append(f"scene {s.id!r} characters: {taken}")
            out += [f"  note: {u.id}: {u.not_used}" for u in s.characters if u.not_used]
    return out
