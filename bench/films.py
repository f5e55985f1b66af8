"""Storyboards and films for the benchmarks, built with the farm's own parsing and checks
(the benchmarks import nothing from tests/)."""

from __future__ import annotations

from farm.model.loader import resolve_model
from farm.spec.film import Film, resolve_film
from farm.spec.profiles import profile_for
from farm.spec.storyboard import parse_storyboard


def scene(sid: str, frames: int, **fields: object) -> dict:
    return {"id": sid, "prompt": f"prompt of {sid}", "frames": frames, **fields}


def board(scenes: list[dict], **film: object) -> dict:
    """A storyboard dict: 64x64 at 16 fps, 8 steps, unless `film` says otherwise."""
    return {"title": "bench", "fps": 16, "width": 64, "height": 64, "steps": 8, **film,
            "scenes": scenes}


def make_film(scenes: list[dict], model: str = "tiny", **film: object) -> Film:
    """The resolved Film of `board(scenes, model=model, **film)` (SpecError if invalid)."""
    return film_of(board(scenes, model=model, **film))


def film_of(data: dict) -> Film:
    """The resolved Film of a storyboard dict naming its model (SpecError if invalid)."""
    return resolve_film(parse_storyboard(data), profile_for(resolve_model(data["model"]).family))
