"""Every status code of the API, each triggered by a real request; tenant isolation."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from farm.api import convert
from farm.api.protos import pb, pb_grpc
from farm.client import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
)
from farm.client.errors import from_rpc_error
from farm.spec.errors import SpecError
from tests.serving.api.helpers import MAX_PER_TENANT, TOKEN, tiny_board

pytestmark = [pytest.mark.grpc, pytest.mark.model]


def raw_create(address: str, film: pb.Film, token: str = TOKEN["alice"]):
    """CreateFilm straight through the generated stub (no client-side validation)."""
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.FilmServiceStub(channel)
        try:
            return stub.CreateFilm(pb.CreateFilmRequest(film=film),
                                   metadata=(("authorization", f"Bearer {token}"),), timeout=30)
        except grpc.RpcError as err:
            return err


def test_invalid_argument_lists_every_field_violation(api_server):
    board = tiny_board(width=60)
    board["scenes"][0]["frames"] = 18
    board["scenes"][1]["guidance"] = {"middle": 2.0}
    err = raw_create(api_server.address, convert.storyboard_to_film(board, priority=101))
    assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = dict(from_rpc_error(err).violations)
    assert violations.keys() == {"film.priority", "film.width", "film.scenes[0].frames",
                                 "film.scenes[1].guidance_per_expert"}
    assert "nearest valid: 17 or 21" in violations["film.scenes[0].frames"]
    assert "not a multiple of 16" in violations["film.width"]


def test_invalid_argument_for_an_empty_film_and_bad_names(api_server, connect):
    err = raw_create(api_server.address, pb.Film(scenes=[pb.Scene(id="A")]))
    fields = {f for f, _ in from_rpc_error(err).violations}
    assert {"film.title", "film.fps", "film.width", "film.height", "film.scenes[0].id",
            "film.scenes[0].prompt"} <= fields
    client = connect("alice")
    with pytest.raises(InvalidArgumentError) as bad_name:
        client.get("films/NOT A NAME")
    assert [f for f, _ in bad_name.value.violations] == ["name"]
    with pytest.raises(InvalidArgumentError, match="filter|state"):
        client.call("ListFilms", pb.ListFilmsRequest(filter="title = x"))
    with pytest.raises(InvalidArgumentError, match="page_token"):
        client.call("ListFilms", pb.ListFilmsRequest(page_token="garbage"))


def test_the_sdk_checks_a_storyboard_before_sending_it(connect):
    board = tiny_board()
    board["scenes"][0]["frames"] = 18
    with pytest.raises(SpecError) as exc:
        connect("alice").submit(board)
    assert [e.path for e in exc.value.errors] == ["scenes[0].frames"]


def test_unauthenticated_without_or_with_a_wrong_token(api_server, connect):
    with pytest.raises(UnauthenticatedError, match="missing"):
        connect(None).get("films/abc")
    with pytest.raises(UnauthenticatedError, match="unknown token"):
        from farm.client import Client

        with Client(api_server.address, token="not-a-token-0123456789") as stranger:
            list(stranger.list())
    err = raw_create(api_server.address, convert.storyboard_to_film(tiny_board()), token="x" * 20)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_not_found(connect):
    with pytest.raises(NotFoundError):
        connect("alice").get("films/doesnotexist")
    with pytest.raises(NotFoundError):
        list(connect("alice").film("films/doesnotexist").frames())


def test_tenants_see_watch_stream_and_cancel_only_their_own_films(connect, tmp_path):
    alice, bob = connect("alice"), connect("bob")
    film = alice.submit(tiny_board(scenes=1, frames=5))
    theirs = bob.film(film.name)
    for attempt in (theirs.get, theirs.cancel, lambda: list(theirs.watch()),
                    lambda: list(theirs.frames()), lambda: theirs.download(tmp_path / "x.mp4")):
        with pytest.raises(PermissionDeniedError):
            attempt()
    assert film.name not in [f.name for f in bob.list()]
    assert film.name in [f.name for f in alice.list()]
    assert convert.state_word(film.wait().state) == "SUCCEEDED"


def test_resource_exhausted_and_failed_preconditions(connect, tmp_path):
    client = connect("quota")
    # Long films (2 x 81 frames): they are still unfinished when the next one comes.
    long_films = [client.submit(tiny_board(frames=81, width=64, height=64, steps=8))
                  for _ in range(MAX_PER_TENANT)]
    try:
        with pytest.raises(ResourceExhaustedError, match="quota"):
            client.submit(tiny_board())
        with pytest.raises(FailedPreconditionError, match="SUCCEEDED"):
            long_films[0].download(tmp_path / "early.mp4")  # no mp4 before success
        with pytest.raises(FailedPreconditionError, match="frames"):
            long_films[0].download(tmp_path / "pngs", scene_id="s1")
    finally:
        finals = [f.cancel() for f in long_films]
    assert {convert.state_word(f.state) for f in finals} == {"CANCELLED"}
    with pytest.raises(FailedPreconditionError, match="already CANCELLED"):
        long_films[0].cancel()  # a finished film cannot be cancelled
    with pytest.raises(FailedPreconditionError):
        list(long_films[0].frames())  # the film ended before its last frame


def test_failed_precondition_for_a_model_the_server_does_not_serve(api_server, connect):
    with pytest.raises(FailedPreconditionError, match="does not serve") as exc:
        connect("alice").submit(tiny_board(model="tiny-ti2v-5b"))
    detail = exc.value.details[0]
    assert isinstance(detail, error_details_pb2.PreconditionFailure)
    assert detail.violations[0].subject == "tiny-ti2v-5b"
