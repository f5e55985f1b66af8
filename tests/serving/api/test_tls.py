"""TLS on the gRPC API: server certificate, and mutual TLS with a client CA. Certificates
are made by the test (a throwaway CA for 127.0.0.1); traffic stays on loopback."""

from __future__ import annotations

import grpc
import pytest

from farm.api.auth import Authenticator
from farm.api.server import ServerConfig, local_server
from farm.api.tls import ClientTls, ServerTls
from farm.client import Client
from farm.client.errors import ApiError

pytestmark = [pytest.mark.grpc, pytest.mark.model]


def serve(tmp_path, tls: ServerTls):
    return local_server("tiny", tmp_path / "art", Authenticator(), ServerConfig(port=0, tls=tls))


def test_tls_server_talks_tls_only(pki, tmp_path):
    server, director = serve(tmp_path, ServerTls(*pki["server"]))
    try:
        with Client(server.address, tls=ClientTls(pki["ca"])) as client:
            assert list(client.list()) == []
        with Client(server.address, timeout=5) as plain, pytest.raises(ApiError) as info:
            list(plain.list())
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(grace=0.5)
        director.stop()


def test_mutual_tls_requires_a_client_certificate(pki, tmp_path):
    server, director = serve(tmp_path, ServerTls(*pki["server"], client_ca=pki["ca"]))
    try:
        with Client(server.address, tls=ClientTls(pki["ca"], *pki["client"])) as client:
            assert list(client.list()) == []
        with Client(server.address, tls=ClientTls(pki["ca"]), timeout=5) as anonymous, \
                pytest.raises(ApiError) as info:
            list(anonymous.list())
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(grace=0.5)
        director.stop()
