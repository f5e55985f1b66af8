"""The web monitor in the `serve --local` process: uvicorn in a thread, beside the gRPC
server, over the same FilmApi and Authenticator, and with the API's TLS settings (https;
with a client CA, browsers must present a certificate it signed).

    server = WebServer(create_app(Monitor(api, auth)), "127.0.0.1", 0).start()
    server.url    # http://127.0.0.1:PORT/
    server.stop()
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    from farm.api.tls import ServerTls


class WebServer:
    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 8080,
                 tls: ServerTls | None = None):
        """Binds now (an OSError if the port is taken; port 0 picks a free one)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host.strip("[]"), port))
        except OSError:
            self.sock.close()
            raise
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.scheme = "http" if tls is None else "https"
        # Open streams (SSE) get 1 s to end when the server stops, then are cancelled.
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1, ws="none", **_ssl(tls))
        try:
            config.load()  # reads the certificate and key now: a bad file fails here
        except OSError as exc:  # ssl.SSLError is one
            self.sock.close()
            raise OSError(f"TLS certificate or key: {exc}") from None
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{self.scheme}://{host}:{self.port}/"

    def start(self, timeout: float = 30.0) -> WebServer:
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="reelfarm-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the web monitor did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.sock.close()


def _ssl(tls: ServerTls | None) -> dict[str, Any]:
    if tls is None:
        return {}
    return {"ssl_certfile": tls.cert, "ssl_keyfile": tls.key, "ssl_ca_certs": tls.client_ca,
            "ssl_cert_reqs": ssl.CERT_REQUIRED if tls.client_ca else ssl.CERT_NONE}


def serve_web(api: Any, auth: Any, host: str = "127.0.0.1", port: int = 8080,
              tls: ServerTls | None = None) -> WebServer:
    """Start the monitor over a FilmApi and the API's Authenticator; returns it started."""
    from farm.web.app import create_app
    from farm.web.monitor import Monitor

    return WebServer(create_app(Monitor(api, auth)), host, port, tls).start()
