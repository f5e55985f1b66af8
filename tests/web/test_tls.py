"""The web monitor over TLS with the API's settings: https only; with a client CA, only
clients holding a certificate it signed get a page. Loopback only."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import pytest

from farm.api.auth import Authenticator
from farm.api.server import ServerConfig, local_server
from farm.api.tls import ServerTls
from farm.web.server import serve_web

pytestmark = [pytest.mark.web, pytest.mark.model]


def get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10, context=context) as reply:
        return reply.status, reply.read()


def monitor(tmp_path, tls: ServerTls):
    server, director = local_server("tiny", tmp_path / "art", Authenticator(),
                                    ServerConfig(port=0, tls=tls))
    return server, director, serve_web(server.api, Authenticator(), "127.0.0.1", 0, tls)


def test_monitor_speaks_https_only(pki, tmp_path):
    server, director, web = monitor(tmp_path, ServerTls(*pki["server"]))
    try:
        assert web.url.startswith("https://127.0.0.1:")
        status, page = get(web.url, ssl.create_default_context(cafile=pki["ca"]))
        assert status == 200 and b"<title>reelfarm monitor</title>" in page
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plaintext is refused
            get(web.url.replace("https://", "http://"))
        with pytest.raises(urllib.error.URLError) as unknown:  # a CA the client does not trust
            get(web.url, ssl.create_default_context())
        assert isinstance(unknown.value.reason, ssl.SSLCertVerificationError)
    finally:
        web.stop()
        server.stop(grace=0.5)
        director.stop()


def test_monitor_with_a_client_ca_requires_a_client_certificate(pki, tmp_path):
    server, director, web = monitor(tmp_path, ServerTls(*pki["server"], client_ca=pki["ca"]))
    try:
        holder = ssl.create_default_context(cafile=pki["ca"])
        holder.load_cert_chain(*pki["client"])
        assert get(web.url, holder)[0] == 200
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            get(web.url, ssl.create_default_context(cafile=pki["ca"]))
    finally:
        web.stop()
        server.stop(grace=0.5)
        director.stop()


def test_a_bad_certificate_is_refused_before_serving(pki, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    server, director = local_server("tiny", tmp_path / "art", Authenticator(), ServerConfig(port=0))
    try:
        with pytest.raises(OSError, match="TLS certificate or key"):
            serve_web(server.api, Authenticator(), "127.0.0.1", 0,
                      ServerTls(str(bad), pki["server"][1]))
    finally:
        server.stop(grace=0.5)
        director.stop()
