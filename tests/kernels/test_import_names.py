"""Importing our kernels never imports triton and never stands in for the Hugging Face
`kernels` package that transformers imports."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["reelfarm_kernels", "reelfarm_kernels.frame_pack", "reelfarm_kernels.blend_step",
           "reelfarm_kernels.solver_step", "reelfarm_kernels.handoff_codec"]


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_the_launchers_imports_no_triton():
    out = run(f"import sys; import {', '.join(MODULES)}; print('triton' in sys.modules)")
    assert out == "False"


def test_importing_ours_leaves_the_hub_package_to_transformers():
    out = run(f"import {', '.join(MODULES)}; import kernels, reelfarm_kernels; "
              "from transformers.utils import is_kernels_available as t; "
              "print(t(), kernels.__file__ != reelfarm_kernels.__file__, "
              "'site-packages' in kernels.__file__)")
    assert out == "True True True"


def test_every_kernels_subpackage_is_listed_in_pyproject():
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    top = ROOT / "kernels" / "reelfarm_kernels"
    found = {".".join(("reelfarm_kernels", *p.parent.relative_to(top).parts))
             for p in top.rglob("__init__.py")}
    assert "reelfarm_kernels.jit" in found and found <= listed
