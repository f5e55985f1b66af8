"""TLS for the gRPC API: a server certificate and key, and optionally a client CA so that
only clients holding a certificate it signed can connect (mutual TLS).

    reelfarm serve --local --tls-cert server.pem --tls-key server.key [--tls-client-ca ca.pem]
    reelfarm submit film.yaml --server farm.example:50051 --tls-ca ca.pem
        [--tls-cert c.pem --tls-key c.key]

Tokens still decide the tenant; TLS keeps them (and the films) private on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc


def _read(path: str | Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path}: {exc.strerror}") from None


@dataclass(frozen=True, slots=True)
class ServerTls:
    cert: str
    key: str
    # With a client CA, a client must present a certificate signed by it.
    client_ca: str | None = None

    def credentials(self) -> grpc.ServerCredentials:
        pair = (_read(self.key, "TLS key"), _read(self.cert, "TLS certificate"))
        ca = _read(self.client_ca, "client CA")
        return grpc.ssl_server_credentials([pair], root_certificates=ca,
                                           require_client_auth=ca is not None)


@dataclass(frozen=True, slots=True)
class ClientTls:
    # CA that signed the server's certificate (None: the system's roots).
    ca: str | None = None
    # The client's own certificate and key, for a server that requires them (mTLS).
    cert: str | None = None
    key: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs its key and a key its certificate")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, "TLS CA"),
            private_key=_read(self.key, "TLS key"),
            certificate_chain=_read(self.cert, "TLS certificate"))
