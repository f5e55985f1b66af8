"""Importing our kernels never imports triton, and never makes transformers or diffusers
believe the Hugging Face `kernels` package is installed."""

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


def test_hf_libraries_still_see_no_kernels_package_after_ours_is_imported():
    out = run(f"import {', '.join(MODULES)}; "
              "from transformers.utils import is_kernels_available as t; "
              "from diffusers.utils import is_kernels_available as d; "
              "import importlib.util; print(t(), d(), importlib.util.find_spec('kernels'))")
    assert out == "False False None"


def test_every_kernels_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(("reelfarm_kernels", *p.parent.relative_to(ROOT / "kernels").parts))
             for p in (ROOT / "kernels").rglob("__init__.py")}
    assert "reelfarm_kernels.jit" in found and found <= listed


def test_from_the_repo_root_the_folder_is_not_taken_for_the_hub_package():
    # cwd on sys.path makes kernels/ findable as `kernels`; the probes must still say no
    code = ("import importlib.util, sys; from transformers.utils import is_kernels_available as t; "
            "from diffusers.utils import is_kernels_available as d; "
            "print(importlib.util.find_spec('kernels').origin, t(), d())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(ROOT / "kernels" / "__init__.py"), "False", "False"]


def test_the_bench_script_is_not_importable_as_kernels_from_its_own_process():
    # `python bench/kernels.py` puts bench/ first on sys.path; the script removes it
    code = ("import runpy, sys; sys.path.insert(0, 'bench'); "
            "runpy.run_path('bench/kernels.py', run_name='bench'); "
            "from transformers.utils import is_kernels_available; is_kernels_available(); "
            "print(getattr(sys.modules.get('kernels'), '__file__', None))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "bench" not in done.stdout
