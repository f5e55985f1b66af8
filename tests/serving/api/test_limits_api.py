"""The farm's limits at the API edge: a film over them is INVALID_ARGUMENT with a field
violation naming the request field, before anything is queued."""

from __future__ import annotations

import pytest

from farm.api.protos import pb
from farm.client.errors import InvalidArgumentError

pytestmark = [pytest.mark.grpc, pytest.mark.model]


def test_over_limit_films_are_refused_with_field_violations(connect):
    client = connect("alice")
    before = len(list(client.list()))
    film = pb.Film(title="huge", fps=16, width=4096, height=64, steps=500,
                   scenes=[pb.Scene(id="a", prompt="a\x00b", frames=9)])
    with pytest.raises(InvalidArgumentError) as info:
        client.call("CreateFilm", pb.CreateFilmRequest(film=film, request_id="limits-1"))
    fields = dict(info.value.violations)
    assert fields["film.width"] == "4096 pixels; t2v-a14b renders at most 1920"
    assert fields["film.steps"] == "500; the limit is 200"
    assert "control characters" in fields["film.scenes[0].prompt"]
    assert len(list(client.list())) == before  # nothing was queued


def test_open_streams_per_tenant_are_limited(tmp_path):
    import grpc

    from farm.api.auth import Authenticator
    from farm.api.server import ServerConfig, local_server
    from farm.client import Client
    from farm.client.errors import ApiError
    from tests.serving.api.helpers import tiny_board

    server, director = local_server("tiny", tmp_path / "art", Authenticator(),
                                    ServerConfig(port=0), max_streams_per_tenant=2)
    try:
        with Client(server.address) as client:
            film = client.submit(tiny_board(scenes=1, frames=9))
            film.pause()  # nothing moves: its watch streams stay open
            streams = [client.stub.WatchFilm(pb.WatchFilmRequest(name=film.name),
                                             metadata=(("application", "reelfarm"),))
                       for _ in range(2)]
            for s in streams:
                next(s)  # both are open and serving
            with pytest.raises(ApiError) as info:
                list(zip(range(1), film.watch(), strict=False))
            assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "streams open" in info.value.message
            for s in streams:
                s.cancel()
    finally:
        server.stop(grace=0.5)
        director.stop()
