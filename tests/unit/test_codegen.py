"""Generated API code: built from the protos at install time, current, importable under
the proto package path, and pinned consistently (build-time grpcio-tools == runtime floors)."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

from farm.api import codegen

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_build_pin_matches_the_runtime_floors_the_generated_code_asserts():
    data = pyproject()
    tools = next(r for r in data["build-system"]["requires"] if r.startswith("grpcio-tools"))
    pinned = tools.split("==")[1]
    deps = data["project"]["dependencies"]
    assert f"grpcio>={pinned}" in deps
    assert f"grpcio-tools=={pinned}" in data["project"]["optional-dependencies"]["dev"]
    generated = (PROTOS / "reelfarm/v1/film_service_pb2.py").read_text()
    major, minor, patch = re.search(
        r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+)",
        generated).groups()
    assert any(d.startswith(f"protobuf>={major}.{minor}.{patch}") for d in deps), deps
    grpc_module = (PROTOS / "reelfarm/v1/film_service_pb2_grpc.py").read_text()
    assert f"GRPC_GENERATED_VERSION = '{pinned}'" in grpc_module


def test_generated_code_is_current_and_imports_by_its_proto_package():
    assert codegen.is_current(PROTOS, PROTOS)
    grpc_module = (PROTOS / "reelfarm/v1/film_service_pb2_grpc.py").read_text()
    # import path == proto package path: no rewriting of generated imports
    assert "from reelfarm.v1 import film_service_pb2" in grpc_module
    from farm.api.protos import pb

    assert pb.DESCRIPTOR.package == "reelfarm.v1"


def test_a_changed_proto_is_noticed_and_regenerated(tmp_path):
    root = tmp_path / "protos"
    shutil.copytree(PROTOS, root, ignore=shutil.ignore_patterns("*.py", "*.pyi", "*.txt"))
    codegen.generate(root, root)
    assert codegen.is_current(root, root)
    proto = root / "reelfarm/v1/film_service.proto"
    proto.write_text(proto.read_text().replace("string state_reason = 21",
                                               "string state_reason = 21;\n  string note = 29"))
    assert not codegen.is_current(root, root)
    codegen.generate(root, root)
    assert codegen.is_current(root, root)
    assert "note" in (root / "reelfarm/v1/film_service_pb2.pyi").read_text()


def test_generated_files_are_not_committed():
    ignored = (ROOT / ".gitignore").read_text()
    for pattern in ("*_pb2.py", "*_pb2_grpc.py", "*_pb2.pyi"):
        assert f"protos/reelfarm/**/{pattern}" in ignored
