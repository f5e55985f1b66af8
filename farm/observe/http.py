"""/metrics over HTTP for the local mode (`reelfarm serve --local --metrics-port PORT`)."""

from __future__ import annotations

from typing import Any

from farm.observe.metrics import PrometheusSink


def serve_metrics(sink: PrometheusSink, port: int, host: str = "127.0.0.1") -> Any:
    """Start a background HTTP server answering /metrics; returns it (`.server_port`,
    `.shutdown()`). Port 0 picks a free port."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=sink.registry)
    return server
