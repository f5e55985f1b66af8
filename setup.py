"""Build hook: generate the reelfarm.v1 Python code from protos/ on every build or install.

pyproject.toml holds all metadata; this file only adds the code generation step. The
generator runs with the grpcio-tools pinned in [build-system] requires, whose output
asserts at import time that the runtime is at least the same grpcio and the protobuf
it was built against; [project] dependencies pin exactly those floors (a unit test
checks that the pins agree). See README.md "How code generation works".
"""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _codegen():
    # Loaded by path: the farm package is not importable while it is being built.
    spec = importlib.util.spec_from_file_location("_reelfarm_codegen", ROOT / "farm/api/codegen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithProtos(build_py):
    """Generates into the source tree (protos/) first, so editable installs see the
    modules where the package maps, and regular builds copy them like any module."""

    def run(self):
        protos = ROOT / "protos"
        _codegen().generate(protos, protos)  # always: it takes a second, and is never stale
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
