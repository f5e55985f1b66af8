"""The web monitor on a real server: `serve --local`'s runtime (tiny model, durable job
store) with the API on 127.0.0.1 and the monitor on another loopback port, shared by the
HTTP and browser tests of a session; both stop at the end of it."""

from __future__ import annotations

import pytest

from farm.api.auth import Authenticator
from farm.api.server import ServerConfig, local_server
from tests.web.helpers import TOKEN, TOKENS


@pytest.fixture(scope="session")
def web_farm(tmp_path_factory):
    """(api server, director, web server) with tokens for alice, bob and carol."""
    from farm.web.server import serve_web

    root = tmp_path_factory.mktemp("web-farm")
    auth = Authenticator.from_tokens(TOKENS)
    server, director = local_server("tiny", root / "artifacts", auth, ServerConfig(port=0),
                                    db=f"sqlite:///{root / 'reelfarm.db'}")
    web = serve_web(server.api, auth, "127.0.0.1", 0)
    yield server, director, web
    web.stop()
    server.stop(grace=1.0)
    director.stop()


@pytest.fixture
def connect(web_farm):
    """connect(tenant) -> an SDK Client of the API server, closed after the test."""
    from farm.client import Client

    clients = []

    def make(tenant: str) -> Client:
        client = Client(web_farm[0].address, token=TOKEN[tenant])
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
