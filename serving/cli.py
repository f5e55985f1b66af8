"""`reelfarm serve --config`: deploy the app from a Serve config YAML and keep it running."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import yaml


def serve_config(path: str, address: str | None, web_port: int | None = None) -> int:
    """Start (or join) Ray, start Serve with the config's gRPC/HTTP options, run the app.
    `web_port`: the Serve HTTP port (the web monitor's), instead of the config's."""
    try:
        config = yaml.safe_load(Path(path).read_text())
        app = _reelfarm_app(config)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    from serving.local import ray_address

    address = ray_address(address)
    if address == "local":  # a cluster of our own on this machine: no token auth for Ray itself
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve
    from ray.serve.config import gRPCOptions

    from serving.app import build_app

    ray.init(address=address, include_dashboard=False)
    grpc = config.get("grpc_options") or {}
    http = dict(config.get("http_options") or {"host": "127.0.0.1"})
    if web_port is not None:
        http["port"] = web_port
    serve.start(http_options=http,
                grpc_options=gRPCOptions(**grpc) if grpc else None)
    prefix = app.get("route_prefix", "/reelfarm")
    serve.run(build_app(app.get("args") or {}), name=app.get("name", "reelfarm"),
              route_prefix=prefix)
    print(f"reelfarm app {app.get('name', 'reelfarm')!r} running; gRPC on port "
          f"{grpc.get('port', 'disabled')}", flush=True)
    print(f"web monitor on http://{http.get('host', '127.0.0.1')}:{http.get('port', 8000)}"
          f"{prefix.rstrip('/')}/", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()
    return 0


def _reelfarm_app(config: object) -> dict:
    if not isinstance(config, dict) or not isinstance(config.get("applications"), list):
        raise ValueError("not a Serve config: expected a mapping with an `applications` list")
    apps = [a for a in config["applications"] if a.get("import_path") == "serving.app:build_app"]
    if len(apps) != 1:
        raise ValueError("expected exactly one application with import_path serving.app:build_app")
    return apps[0]
