"""A real reelfarm API server on 127.0.0.1 (tiny model) shared by the API tests.

Three tenants with tokens (helpers.TOKENS): alice and bob for isolation, quota for
RESOURCE_EXHAUSTED. The director keeps a durable job store (SQLite in a temporary folder),
so the render log (ListExecutions) is there. The server and its director stop at the end
of the session.
"""

from __future__ import annotations

import pytest

from farm.api.auth import Authenticator
from farm.api.server import ServerConfig, local_server
from tests.serving.api.helpers import MAX_PER_TENANT, MAX_QUEUED_FRAMES, TOKEN, TOKENS


@pytest.fixture(scope="session")
def api_farm(tmp_path_factory):
    """(server, director) of the shared test server."""
    root = tmp_path_factory.mktemp("farm")
    server, director = local_server("tiny", root / "artifacts", Authenticator.from_tokens(TOKENS),
                                    ServerConfig(port=0), db=f"sqlite:///{root / 'reelfarm.db'}",
                                    max_unfinished_per_tenant=MAX_PER_TENANT,
                                    max_queued_frames_per_tenant=MAX_QUEUED_FRAMES)
    yield server, director
    server.stop(grace=1.0)
    director.stop()


@pytest.fixture(scope="session")
def api_server(api_farm):
    return api_farm[0]


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
