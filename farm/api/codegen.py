"""Generates the Python code of protos/reelfarm (grpc_tools.protoc); never edit its output.

    protos/reelfarm/v1/film_service.proto ──protoc──> protos/reelfarm/v1/film_service_pb2.py
                                                                  film_service_pb2.pyi
                                                                  film_service_pb2_grpc.py
    import path == proto package path (`reelfarm.v1`), so no import rewriting is needed;
    pyproject maps the Python package `reelfarm` to protos/reelfarm.

Run by setup.py's build_py (with the grpcio-tools pinned in [build-system]) on every
install, and by farm.api.protos when a source checkout's protos changed since then.
Standalone on purpose (stdlib only, grpc_tools imported when generating): setup.py loads
this file by path, before the package is importable.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import os
import tempfile
from pathlib import Path

# Which protos: our package only; protos/google holds vendored annotations whose Python
# code comes from googleapis-common-protos.
PACKAGE = "reelfarm"
STAMP = "_generated.txt"


def proto_files(root: Path) -> list[Path]:
    return sorted((root / PACKAGE).rglob("*.proto"))


def source_digest(root: Path) -> str:
    """sha256 over every proto of the package (names and contents)."""
    h = hashlib.sha256()
    for path in proto_files(root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def is_current(root: Path, out: Path) -> bool:
    """True if `out` holds code generated from exactly the protos now under `root`."""
    stamp = out / PACKAGE / STAMP
    return stamp.is_file() and stamp.read_text().split()[:2] == ["sha256", source_digest(root)]


def generate(root: Path, out: Path) -> list[Path]:
    """Generate into `out` (atomically per file); returns the files written."""
    from grpc_tools import protoc

    well_known = importlib.resources.files("grpc_tools") / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    # A scratch folder inside `out` (same file system), so each file lands by os.replace
    # and a concurrent importer never sees a half-written module.
    with tempfile.TemporaryDirectory(dir=out, prefix=".protoc-") as tmp:
        args = ["grpc_tools.protoc", f"-I{root}", f"-I{well_known}", f"--python_out={tmp}",
                f"--pyi_out={tmp}", f"--grpc_python_out={tmp}",
                *(p.relative_to(root).as_posix() for p in proto_files(root))]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {root} (see the messages above)")
        stamp = Path(tmp) / PACKAGE / STAMP
        tools = importlib.metadata.version("grpcio-tools")
        stamp.write_text(f"sha256 {source_digest(root)}\ngrpcio-tools {tools}\n")
        written = []
        for src in sorted(Path(tmp).rglob("*")):
            if src.is_file():
                dst = out / src.relative_to(tmp)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                written.append(dst)
    return written
