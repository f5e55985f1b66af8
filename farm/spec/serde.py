"""A resolved Film as plain JSON data and back (what the job store keeps).

The profile is stored by family name: a film restored after an upgrade plans with the
profile of the running code, like any film submitted now.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from farm.spec.delivery import Delivery
from farm.spec.film import Film, Scene
from farm.spec.inputs import SceneInputs
from farm.spec.profiles import profile_for

VERSION = 1


def film_to_dict(film: Film) -> dict[str, Any]:
    data = {f.name: getattr(film, f.name) for f in dataclasses.fields(film)
            if f.name not in ("profile", "scenes", "delivery")}
    data["family"] = film.profile.family
    if film.delivery is not None:
        data["delivery"] = dataclasses.asdict(film.delivery)
    data["scenes"] = [dataclasses.asdict(s) for s in film.scenes]
    data["version"] = VERSION
    return data


def film_from_dict(data: dict[str, Any]) -> Film:
    if data.get("version") != VERSION:
        raise ValueError(f"unsupported film record version {data.get('version')!r}")
    scenes = tuple(_scene(s) for s in data["scenes"])
    fields = {k: v for k, v in data.items()
              if k not in ("family", "scenes", "version", "delivery")}
    # Records written before delivery conform existed have none.
    delivery = Delivery(**data["delivery"]) if data.get("delivery") else None
    return Film(profile=profile_for(data["family"]), scenes=scenes, delivery=delivery, **fields)


def _scene(data: dict[str, Any]) -> Scene:
    # Records written before media inputs existed have no "inputs": the scene had only
    # its first-frame image.
    inputs = dict(data.get("inputs") or {"image": data.get("image")})
    inputs["references"] = tuple(inputs.get("references") or ())
    return Scene(**{**data, "guidance": tuple(data["guidance"]),
                    "inputs": SceneInputs(**inputs)})
