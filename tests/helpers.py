"""Small builders shared by tests (no torch here)."""

from __future__ import annotations

from farm.plan.film import FilmPlan, plan_film
from farm.spec.film import Film, resolve_film
from farm.spec.profiles import profile_for
from farm.spec.storyboard import parse_storyboard


def board(scenes: list[dict], **film: object) -> dict:
    data = {"title": "test", "fps": 16, "width": 64, "height": 64, "steps": 8}
    data.update(film)
    data["scenes"] = scenes
    return data


def make_film(scenes: list[dict], family: str = "t2v-a14b", model: str | None = None,
              **film: object) -> Film:
    return resolve_film(parse_storyboard(board(scenes, **film)), profile_for(family), model=model)


def make_plan(scenes: list[dict], family: str = "t2v-a14b", **film: object) -> FilmPlan:
    return plan_film(make_film(scenes, family, **film))


def scene(sid: str = "s1", frames: int = 17, **kw: object) -> dict:
    return {"id": sid, "prompt": f"prompt of {sid}", "frames": frames, **kw}


def resolve_in(data: dict, folder, family: str = "t2v-a14b") -> Film:
    """A storyboard dict resolved for `family`, its files relative to `folder`."""
    return resolve_film(parse_storyboard(data), profile_for(family), base_dir=folder)


def resolve_errors(data: dict, folder, family: str = "t2v-a14b") -> dict[str, str]:
    """Path -> message of every error resolving `data` gives (it must give some)."""
    import pytest

    from farm.spec.errors import SpecError

    with pytest.raises(SpecError) as info:
        resolve_in(data, folder, family)
    return {e.path: e.message for e in info.value.errors}
