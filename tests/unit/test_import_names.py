"""Import names: our kernels/ folder must never be mistaken for the PyPI `kernels`
package that transformers and diffusers probe for; pure layers import no heavy deps."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(code: str, cwd: Path = Path("/")) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_kernels_folder_installs_under_a_distinct_name():
    spec = importlib.util.find_spec("reelfarm_kernels")
    assert spec is not None and Path(spec.origin).parent == ROOT / "kernels"
    # From any working directory, `kernels` is not our folder (and not installed).
    assert run("import importlib.util; print(importlib.util.find_spec('kernels'))") == "None"


def test_hf_libraries_do_not_see_a_kernels_package():
    out = run("from transformers.utils import is_kernels_available as t; "
              "from diffusers.utils import is_kernels_available as d; print(t(), d())")
    assert out == "False False"


def test_pure_layers_import_no_torch_ray_or_grpc():
    out = run("import sys; import farm.spec.film, farm.plan.film, farm.sched.scheduler, "
              "farm.engine.core, farm.stitch.stream; "
              "print(sorted(m for m in ('torch', 'ray', 'grpc', 'diffusers') if m in sys.modules))")
    assert out == "[]"


def test_the_client_sdk_imports_no_torch():
    out = run("import sys; import farm.client; "
              "print(sorted(m for m in ('torch', 'diffusers', 'ray', 'farm.local') if m in sys.modules))")
    assert out == "[]"


def test_every_package_folder_is_listed_in_pyproject():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in ("farm", "serving")
             for p in (ROOT / top).rglob("__init__.py")}
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"
