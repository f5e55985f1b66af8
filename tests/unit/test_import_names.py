"""Import names: our kernels/ folder never hides the PyPI `kernels` package that
transformers imports, from any working directory; pure layers import no heavy deps."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(code: str, cwd: Path = Path("/")) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _site_packages_kernels() -> str:
    """Where the PyPI `kernels` (a dependency of transformers, in the lock) is installed."""
    from importlib.metadata import distribution

    dist = distribution("kernels")
    return str(Path(dist.locate_file("kernels/__init__.py")).resolve())


def test_kernels_folder_installs_under_a_distinct_name():
    spec = importlib.util.find_spec("reelfarm_kernels")
    assert spec is not None and Path(spec.origin).parent == ROOT / "kernels" / "reelfarm_kernels"
    assert not (ROOT / "kernels" / "__init__.py").exists()  # a regular package would shadow


@pytest.mark.parametrize("cwd", ["/", "root", "root/bench"])
def test_import_kernels_finds_the_pypi_package_from_any_directory(cwd):
    # `python -c` puts the working directory first on sys.path, as the shell of a user
    # sitting in the checkout, `python -m` from the root and pytest's rootdir do.
    where = {"/": Path("/"), "root": ROOT, "root/bench": ROOT / "bench"}[cwd]
    found = run("import kernels, os; print(os.path.realpath(kernels.__file__))", cwd=where)
    assert found == _site_packages_kernels()


def test_import_kernels_in_this_pytest_process_is_the_pypi_package():
    import kernels

    assert str(Path(kernels.__file__).resolve()) == _site_packages_kernels()
    # ... and transformers, which imports it from transformers.integrations, sees it
    from transformers.utils import is_kernels_available

    assert is_kernels_available()


@pytest.mark.ray
@pytest.mark.slow
def test_import_kernels_inside_a_ray_task_is_the_pypi_package():
    # Ray workers start in the driver's working directory and put it on sys.path.
    code = ("import os, ray; os.environ.setdefault('RAY_AUTH_MODE', 'disabled'); "
            "ray.init(address='local', num_cpus=1, include_dashboard=False, log_to_driver=False)\n"
            "@ray.remote\ndef where():\n"
            "    import kernels, os, reelfarm_kernels\n"
            "    return os.path.realpath(kernels.__file__), os.getcwd()\n"
            "print(*ray.get(where.remote()))\nray.shutdown()")
    found, worker_cwd = run(code, cwd=ROOT).split()[-2:]
    assert worker_cwd == str(ROOT)
    assert found == _site_packages_kernels()


def test_pure_layers_import_no_torch_ray_or_grpc():
    out = run("import sys; import farm.spec.film, farm.plan.film, farm.sched.scheduler, "
              "farm.engine.core, farm.stitch.stream; "
              "print(sorted(m for m in ('torch', 'ray', 'grpc', 'diffusers') if m in sys.modules))")
    assert out == "[]"


def test_the_client_sdk_imports_no_torch():
    out = run("import sys; import farm.client; "
              "print(sorted(m for m in ('torch', 'diffusers', 'ray', 'farm.local') "
              "if m in sys.modules))")
    assert out == "[]"


def test_every_package_folder_is_listed_in_pyproject():
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in ("farm", "serving")
             for p in (ROOT / top).rglob("__init__.py")}
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"
