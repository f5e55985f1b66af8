"""What the story writer is asked for: the user's brief and the film values the command
line fixes (shared by the writer and its prompts, so neither imports the other)."""

from __future__ import annotations

from dataclasses import dataclass

from farm.spec.storyboard import Character


@dataclass(frozen=True, slots=True)
class Brief:
    """What the user asked for."""

    logline: str
    scenes: int
    style: str | None = None
    extend_prompts: bool = False
    # A given bible (ids, names, descriptions, reference paths relative to `out_dir`);
    # empty: the LLM invents up to `max_characters`.
    characters: tuple[Character, ...] = ()
    max_characters: int = 3


@dataclass(frozen=True, slots=True)
class Settings:
    """The film values the command line fixes."""

    fps: int
    width: int
    height: int
    model: str
    steps: int | None = None
    negative_prompt: str = ""
    frames: int | None = None
    seed: int = 0
