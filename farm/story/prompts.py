"""The messages the story writer sends (the schema holds the form; these ask for content)."""

from __future__ import annotations

from collections.abc import Sequence

from farm.spec.storyboard import Character, Storyboard
from farm.story.bible import description_sentence, named
from farm.story.brief import Brief

SYSTEM = (
    "You are the director of a short film rendered shot by shot by Wan2.2, a text-to-video "
    "model. Every shot is a separate clip of a few seconds: one subject doing one visible "
    "thing, one camera setup, no cuts inside a shot, no text on screen, no dialogue. "
    "Answer with JSON only, exactly in the requested form, each text on one line."
)


def _chat(user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _style(style: str | None) -> str:
    return f"Visual style: {style}.\n" if style else ""


def characters(brief: Brief) -> list[dict[str, str]]:
    return _chat(
        f"Logline: {brief.logline}\n{_style(brief.style)}"
        f"List the recurring characters and places of this film (at most "
        f"{brief.max_characters}; fewer if the story needs fewer). For each: `id`, a short "
        "lowercase word (letters, digits, underscores), `name` as the shots will call it, and "
        "`description`: one sentence of what the camera sees (for a person: age, build, face, "
        "hair, clothing; for a place: setting, materials, colours, time of day). The same "
        "description is pasted into every shot that shows it, so describe only what never "
        "changes.")


def shots(brief: Brief, cast: Sequence[Character], frames: list[int]) -> list[dict[str, str]]:
    bible = "".join(f"- {c.id}: {description_sentence(c)}\n" for c in cast)
    who = (f"Characters and places (call them by name; list the ids that appear in `characters`):\n"
           f"{bible}") if cast else ""
    length = (f"Each shot has {frames[0]} frames." if len(frames) == 1 else
              f"Choose each shot's `frames` (length at the film's frame rate) among {frames}.")
    return _chat(
        f"Logline: {brief.logline}\n{_style(brief.style)}{who}"
        f"Write the film as exactly {brief.scenes} shots, in order, and a `title`. Each shot's "
        "`prompt` is one sentence: who or what is in frame, what they do, where. Keep the ids "
        f"given. {length}")


def extension(board: Storyboard, index: int, prompt: str) -> list[dict[str, str]]:
    scene = board.scenes[index]
    direct = board.direct
    context = f"Film: {board.title}.\n"
    if direct is not None and direct.logline:
        context += f"Logline: {direct.logline}\n"
    context += _style(direct.style if direct is not None else None)
    known = named(board.characters, [prompt], scene.characters or ())
    context += "".join(f"- {description_sentence(c)}\n" for c in known)
    return _chat(
        f"{context}Shot {index + 1} of {len(board.scenes)}: {prompt}\n"
        "Rewrite this shot as a detailed video-generation prompt in four parts: `subject` "
        "(who or what, their appearance and the setting, concrete visual detail), `motion` "
        "(what moves and how, in this shot only), `camera` (shot size, angle, lens, camera "
        "movement) and `lighting` (light sources, direction, quality, colour, mood). Keep "
        "everything the shot says; add only what a cinematographer would choose.")
