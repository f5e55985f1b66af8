"""The story writer: logline -> storyboard in three structured stages, and the finishing pass
(prompt extension, character bible) that also runs on an existing storyboard.

Stages (each one LLM request, or one per scene, under a schema from `farm.story.schema`):

1. cast: the bible ({"characters": [...]}), unless the user gave one (`--characters`);
2. shots: the title and one short prompt per scene, with its frame count and cast;
3. extension (opt-in, `direct: {extend_prompts: true}`): per scene, subject / motion /
   camera / lighting, composed into a Wan-style prompt.

Everything else is assembled here from the command line (fps, size, model, seeds, ids), and
the result is checked with the same code as `reelfarm validate` (`parse_storyboard` +
`resolve_film`) on the very YAML text that would be written. Nothing invalid is returned.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from farm.spec.errors import FieldError, SpecError
from farm.spec.film import resolve_film
from farm.spec.inputs import MEDIA_FIELDS
from farm.spec.profiles import ModelProfile
from farm.spec.storyboard import (
    Character,
    Storyboard,
    is_reference_id,
    parse_document,
    parse_storyboard,
)
from farm.story import prompts, schema
from farm.story.bible import compose, sentence, unique_ids
from farm.story.brief import Brief, Settings


class StoryError(RuntimeError):
    """The LLM's answer could not be used (not JSON, or not of the schema)."""


@dataclass(frozen=True, slots=True)
class LlmRequest:
    """One chat completion under a JSON schema (`schema` as sent: see schema.for_llm)."""

    name: str
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    max_tokens: int


class Llm(Protocol):
    def complete(self, requests: Sequence[LlmRequest]) -> list[str]:
        """The answers' texts, in order (one batch: a local engine runs them together)."""
        ...


def scene_ids(n: int) -> list[str]:
    return [f"s{10 * (i + 1):03d}" for i in range(n)]


def ask(llm: Llm, name: str, stage_schema: dict[str, Any],
        messages: list[list[dict[str, str]]]) -> list[Any]:
    """One request per conversation under `stage_schema`; the parsed, checked answers."""
    sent = schema.for_llm(stage_schema)
    budget = schema.max_bytes(stage_schema) + 16
    answers = llm.complete([LlmRequest(name, m, sent, budget) for m in messages])
    out = []
    for i, text in enumerate(answers):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise StoryError(f"{name}: the LLM's answer is not JSON ({exc}): "
                             f"{text[:200]!r}") from None
        problems = schema.conforms(stage_schema, value)
        if problems:
            where = f"{name}[{i}]" if len(messages) > 1 else name
            raise StoryError(f"{where}: the LLM's answer does not follow the schema (does the "
                             f"server apply response_format?): {'; '.join(problems[:5])}")
        out.append(value)
    return out


def invent_characters(llm: Llm, brief: Brief) -> tuple[Character, ...]:
    """Stage 1: the bible, ids made unique in order."""
    if brief.characters or brief.max_characters <= 0:
        return brief.characters
    [answer] = ask(llm, "characters", schema.characters_schema(brief.max_characters),
                   [prompts.characters(brief)])
    raw = answer["characters"]
    ids = unique_ids([c["id"] for c in raw])
    return tuple(Character(id=cid, name=c["name"], description=c["description"])
                 for cid, c in zip(ids, raw, strict=True))


def write_shots(llm: Llm, brief: Brief, profile: ModelProfile, settings: Settings,
                characters: Sequence[Character]) -> dict[str, Any]:
    """Stage 2, assembled into a storyboard dict (original prompts, no extension yet)."""
    ids = scene_ids(brief.scenes)
    frames = schema.frame_choices(profile, settings.frames)
    stage = schema.shots_schema(ids, frames, [c.id for c in characters])
    [answer] = ask(llm, "shots", stage, [prompts.shots(brief, characters, frames)])
    scenes = []
    for i, shot in enumerate(answer["scenes"]):
        scene = {"id": shot["id"], "prompt": shot["prompt"], "frames": shot["frames"],
                 "seed": settings.seed + i}
        cast = list(dict.fromkeys(shot.get("characters", [])))
        if cast:
            scene["characters"] = cast
        scenes.append(scene)
    board: dict[str, Any] = {"title": answer["title"], "fps": settings.fps,
                             "width": settings.width, "height": settings.height,
                             "model": settings.model}
    if settings.steps is not None:
        board["steps"] = settings.steps
    board.update(negative_prompt=settings.negative_prompt, scenes=scenes)
    board["characters"] = [c.model_dump(exclude_defaults=True) for c in characters]
    board["direct"] = {"extend_prompts": brief.extend_prompts, "logline": brief.logline,
                       **({"style": brief.style} if brief.style else {})}
    return board


def extend(llm: Llm, board: Storyboard) -> list[str]:
    """Stage 3: each scene's extended prompt, from its original prompt."""
    originals = [s.original_prompt or s.prompt for s in board.scenes]
    answers = ask(llm, "extension", schema.extension_schema(),
                  [prompts.extension(board, i, p) for i, p in enumerate(originals)])
    return [" ".join(sentence(f"{label}{a[k]}") for k, label in
                     (("subject", ""), ("motion", ""), ("camera", "Camera: "),
                      ("lighting", "Lighting: "))) for a in answers]


def finish(board: Storyboard, llm: Llm | None) -> dict[str, Any]:
    """Extension (when the film opts in) and the bible, on any storyboard. Scenes keep
    `original_prompt`, so running it again starts from the same originals."""
    direct = board.direct
    extended = None
    if direct is not None and direct.extend_prompts:
        if llm is None:
            raise StoryError("this film asks for prompt extension "
                             "(direct.extend_prompts): an LLM is needed")
        extended = extend(llm, board)
    style = direct.style if direct is not None else None
    data = board.model_dump(exclude_unset=True)
    for i, (spec, scene) in enumerate(zip(board.scenes, data["scenes"], strict=True)):
        original = spec.original_prompt or spec.prompt
        text = extended[i] if extended else original
        out = compose(text, list(board.characters), spec.characters or (), style, [original])
        scene.update(prompt=out.prompt, original_prompt=original)
        scene.pop("characters", None)
        # The named characters' images after the scene's own references (ids, files).
        refs = list(scene.pop("references", None) or [])
        refs += [ref for ref in out.references if ref not in refs]
        if out.cast:
            scene["characters"] = list(out.cast)
        if refs:
            scene["references"] = refs
    return data


def write_storyboard(llm: Llm, brief: Brief, profile: ModelProfile,
                     settings: Settings, out_dir: str | Path) -> str:
    """All stages; the YAML text of a storyboard that passed validation."""
    characters = invent_characters(llm, brief)
    board = parse_storyboard(write_shots(llm, brief, profile, settings, characters))
    return to_yaml(finish(board, llm), profile, out_dir)


def to_yaml(data: dict[str, Any], profile: ModelProfile, out_dir: str | Path,
            header: str = "Written by `reelfarm direct`") -> str:
    """The storyboard as YAML, checked as `reelfarm validate` would check the file.

    Scenes name their characters' reference images only for families that take reference
    images (VACE, Animate): giving a family an input it cannot use is a validation error,
    and the bible keeps the images either way."""
    missing = [FieldError(f"scenes[{i}].references", f"no such file: {ref}")
               for i, s in enumerate(data["scenes"]) for ref in (s.get("references") or ())
               if (not is_reference_id(ref) and "://" not in ref
                   and not Path(os.path.normpath(Path(out_dir) / ref)).is_file())]
    if missing:
        raise SpecError(missing)
    if "references" not in profile.conditioning:
        data = {**data, "scenes": [{k: v for k, v in s.items() if k != "references"}
                                   for s in data["scenes"]]}
    text = f"# {header}\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SpecError([FieldError("", f"not encodable as UTF-8: {exc}")]) from None
    board = parse_storyboard(parse_document(text, ".yaml"))
    resolve_film(board, profile, base_dir=out_dir)
    return text


def rebase(path: str, src_dir: str | Path, out_dir: str | Path) -> str:
    """A path relative to `src_dir`, made relative to `out_dir` (absolute paths and URLs
    stay as they are)."""
    if os.path.isabs(path) or "://" in path:
        return path
    return os.path.relpath(Path(src_dir, path).resolve(), Path(out_dir).resolve())


def rebased(board: Storyboard, src_dir: str | Path, out_dir: str | Path) -> Storyboard:
    """The storyboard with its media paths (scene images, references) relative to
    `out_dir` instead of `src_dir` (where it was read)."""
    data = board.model_dump(exclude_unset=True)
    for scene in data["scenes"]:
        for name in MEDIA_FIELDS:
            if isinstance(scene.get(name), str):
                scene[name] = rebase(scene[name], src_dir, out_dir)
        if scene.get("references"):
            scene["references"] = [r if is_reference_id(r) else rebase(r, src_dir, out_dir)
                                   for r in scene["references"]]
    for ref in data.get("references", []):
        ref["image"] = rebase(ref["image"], src_dir, out_dir)
    for ch in data.get("characters", []):
        ch["references"] = [rebase(r, src_dir, out_dir) for r in ch.get("references", [])]
    return parse_storyboard(data)
