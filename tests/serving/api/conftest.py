"""A real reelfarm API server on 127.0.0.1 (tiny model) shared by the API tests.

Three tenants with tokens (helpers.TOKENS): alice and bob for isolation, quota for
RESOURCE_EXHAUSTED. The server and its director stop at the end of the session.
"""

from __future__ import annotations

import pytest

from farm.api.auth import Authenticator
from farm.api.server import ServerConfig, local_server
from tests.serving.api.helpers import MAX_PER_TENANT, TOKEN, TOKENS


@pytest.fixture(scope="session")
def api_server(tmp_path_factory):
    server, director = local_server("tiny", tmp_path_factory.mktemp("artifacts"),
                                    Authenticator.from_tokens(TOKENS), ServerConfig(port=0),
                                    max_unfinished_per_tenant=MAX_PER_TENANT)
    yield server
    server.stop(grace=1.0)
    director.stop()


@pytest.fixture
def connect(api_server):
    """connect(tenant or None, address=None) -> a Client, closed after the test."""
    from farm.client import Client

    clients = []

    def make(tenant: str | None = "alice", address: str | None = None) -> Client:
        client = Client(address or api_server.address, token=TOKEN.get(tenant) if tenant else None)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
