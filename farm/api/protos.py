"""The generated reelfarm.v1 modules, for the rest of farm (import `pb` and `pb_grpc` here).

Installs generate them (setup.py). In a source checkout whose protos changed since the
last install, they are regenerated here first, with the grpcio-tools of this environment
(a dev dependency), whose output always runs on this environment's grpcio and protobuf.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from farm.api import codegen


def _checkout_protos() -> Path | None:
    """protos/ of the source checkout that the installed `reelfarm` package maps to."""
    spec = importlib.util.find_spec("reelfarm")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))).parent
    return root if codegen.proto_files(root) else None


def _ensure_current() -> None:
    root = _checkout_protos()
    if root is None or codegen.is_current(root, root):
        return  # an installed wheel, or an up-to-date checkout
    try:
        codegen.generate(root, root)
    except ImportError:
        raise ImportError(f"the generated API code under {root} is missing or older than its "
                          "protos; reinstall (`pip install -e .`, or `make test`)") from None


_ensure_current()

from reelfarm.v1 import film_service_pb2 as pb  # noqa: E402
from reelfarm.v1 import film_service_pb2_grpc as pb_grpc  # noqa: E402

__all__ = ["pb", "pb_grpc"]
