"""A resolved Film as plain JSON data and back (what the job store keeps).

The profile is stored by family name: a film restored after an upgrade plans with the
profile of the running code, like any film submitted now.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from farm.spec.adapters import Adapter, Draft
from farm.spec.characters import CharacterUse
from farm.spec.delivery import Delivery
from farm.spec.dialogue import DialogueShot
from farm.spec.film import Film, Scene
from farm.spec.inputs import SceneInputs
from farm.spec.profiles import profile_for
from farm.spec.speed import CacheSetting, Speed

VERSION = 1


def film_to_dict(film: Film) -> dict[str, Any]:
    data = {f.name: getattr(film, f.name) for f in dataclasses.fields(film)
            if f.name not in ("profile", "scenes", "delivery", "draft")}
    data["family"] = film.profile.family
    if film.delivery is not None:
        data["delivery"] = dataclasses.asdict(film.delivery)
    if film.draft is not None:
        data["draft"] = dataclasses.asdict(film.draft)
    data["scenes"] = [dataclasses.asdict(s) for s in film.scenes]
    data["version"] = VERSION
    return data


def film_from_dict(data: dict[str, Any]) -> Film:
    if data.get("version") != VERSION:
        raise ValueError(f"unsupported film record version {data.get('version')!r}")
    scenes = tuple(_scene(s) for s in data["scenes"])
    fields = {k: v for k, v in data.items()
              if k not in ("family", "scenes", "version", "delivery", "draft")}
    # Records written before delivery conform existed have none.
    delivery = Delivery(**data["delivery"]) if data.get("delivery") else None
    return Film(profile=profile_for(data["family"]), scenes=scenes, delivery=delivery,
                draft=_draft(data.get("draft")), **fields)


def _adapters(items) -> tuple[Adapter, ...]:
    # Records written before adapters existed have none.
    return tuple(Adapter(a["name"], a["location"], tuple(a["weights"])) for a in items or ())


def _draft(data: dict[str, Any] | None) -> Draft | None:
    if not data:
        return None
    return Draft(data["steps"], data["guidance"], _adapters(data["adapters"]),
                 data["final_steps"], tuple(tuple(g) for g in data["final_guidance"]))


def _scene(data: dict[str, Any]) -> Scene:
    # Records written before media inputs existed have no "inputs": the scene had only
    # its first-frame image.
    inputs = dict(data.get("inputs") or {"image": data.get("image")})
    inputs["references"] = tuple(inputs.get("references") or ())
    return Scene(**{**data, "guidance": tuple(data["guidance"]),
                    "inputs": SceneInputs(**inputs),
                    "adapters": _adapters(data.get("adapters")),
                    # Records written before characters were rendered have none.
                    "characters": tuple(CharacterUse(c["id"], tuple(c["used"]), c["not_used"])
                                        for c in data.get("characters") or ()),
                    "dialogue": DialogueShot.from_dict(data.get("dialogue")),
                    "speed": _speed(data.get("speed"))})


def _speed(items) -> Speed:
    # Records written before speed settings existed have none (exact).
    return tuple(None if s is None else CacheSetting(
        s["cache"], tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in s["params"]))
        for s in items or ())
