"""The pure half of the family registry (farm.spec.profiles.PROFILES): the default limits
come from the profiles, and no other code of the model or spec layers names a family (a
new family is its profile and its module in farm.model.families, nothing else)."""

from __future__ import annotations

import re
from pathlib import Path

from farm.spec.limits import DEFAULT_MAX_SIDE, Limits
from farm.spec.profiles import DEFAULT_FAMILY, PROFILES

ROOT = Path(__file__).resolve().parents[2]
# Where family names may be spelled: the pure registry and the family modules.
REGISTRY = [ROOT / "farm/spec/profiles.py", ROOT / "farm/model/families"]


def test_default_max_sides_are_the_profiles():
    assert DEFAULT_MAX_SIDE == {"t2v-a14b": 1920, "i2v-a14b": 1920, "ti2v-5b": 1920}
    assert Limits().max_side == DEFAULT_MAX_SIDE
    assert DEFAULT_FAMILY in PROFILES


def test_no_family_name_is_spelled_outside_the_registry():
    names = "|".join(re.escape(f) for f in PROFILES)
    quoted = re.compile(rf"""["']({names})["']""")
    found = []
    for folder in ("farm/model", "farm/spec"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if any(path == r or r in path.parents for r in REGISTRY):
                continue
            found += [f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
                      for i, line in enumerate(path.read_text().splitlines(), 1)
                      if quoted.search(line)]
    assert not found, ("compare families through farm.model.families, not by name:\n"
                       + "\n".join(found))
