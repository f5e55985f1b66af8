"""The model families the farm runs: one module each, registered here.

This is the torch half of the registry (how to recognise, load, build tiny and encode
inputs for each family: farm.model.families.base.Family); the pure half is
farm.spec.profiles.PROFILES, under the same names. Adding a family:

    1. its ModelProfile in farm/spec/profiles.py, added to PROFILES;
    2. a module here with a Family subclass and `FAMILY = ...`, added to REGISTERED.

Nothing else in the farm compares family names: everything asks the family.
"""

from __future__ import annotations

from pathlib import Path

from farm.model.families import animate_14b, i2v_a14b, s2v_14b, t2v_a14b, ti2v_5b, vace_a14b
from farm.model.families.base import Family, FolderConfigs

# In the order the built-in tiny models are listed ("tiny-t2v-a14b", ...).
REGISTERED = (t2v_a14b.FAMILY, i2v_a14b.FAMILY, ti2v_5b.FAMILY, animate_14b.FAMILY,
              vace_a14b.FAMILY, s2v_14b.FAMILY)
FAMILIES: dict[str, Family] = {f.name: f for f in REGISTERED}

__all__ = ["FAMILIES", "Family", "FolderConfigs", "detect", "family", "own_folder"]


def family(name: str) -> Family:
    """The family of this name; ValueError naming the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; known families: "
                         f"{', '.join(FAMILIES)}") from None


def own_folder(path: Path) -> str | None:
    """The family whose own (not diffusers) layout the folder has, if any."""
    return next((f.name for f in REGISTERED if f.own_folder(path)), None)


def detect(configs: FolderConfigs) -> str | None:
    """The family of a diffusers-format folder from its configs (None: none claims it)."""
    for f in sorted(REGISTERED, key=lambda f: f.detect_rank):
        if f.detect(configs):
            return f.name
    return None
