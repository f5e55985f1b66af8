"""Every RPC, fed malformed and hostile messages against a real server on 127.0.0.1:
no crash, no hang, a deliberate status code (never INTERNAL for a message the server
could decode), and a film accepted before the fuzzing renders identically meanwhile."""

from __future__ import annotations

import hashlib

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm.api.auth import Authenticator
from farm.api.protos import pb, pb_grpc
from farm.api.server import ServerConfig, local_server
from farm.client import Client

pytestmark = [pytest.mark.grpc, pytest.mark.model]
TOKEN = "fuzz-token-0123456789abcdef"
OK_CODES = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
            grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED}
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
TEXT = st.text(max_size=40) | st.sampled_from(["films/", "films/../../etc", "films/" + "a" * 300,
                                              "films/ok", "\x00", "state = RUNNING", "🎬"])
INT32 = st.integers(-(2**31), 2**31 - 1)
SCENE = st.builds(pb.Scene, id=TEXT, prompt=TEXT, frames=INT32, seed=st.integers(0, 2**63 - 1))
FILM = st.builds(pb.Film, title=TEXT, fps=INT32, width=INT32, height=INT32, model=TEXT,
                 scenes=st.lists(SCENE, max_size=3))
REQUESTS = st.one_of(
    st.tuples(st.just("CreateFilm"), st.builds(pb.CreateFilmRequest, film=FILM, request_id=TEXT)),
    st.tuples(st.just("GetFilm"), st.builds(pb.GetFilmRequest, name=TEXT)),
    st.tuples(st.just("ListFilms"), st.builds(pb.ListFilmsRequest, page_size=INT32,
                                              page_token=TEXT, filter=TEXT)),
    st.tuples(st.just("CancelFilm"), st.builds(pb.CancelFilmRequest, name=TEXT)),
    st.tuples(st.just("PauseFilm"), st.builds(pb.PauseFilmRequest, name=TEXT)),
    st.tuples(st.just("RerenderFilm"), st.builds(pb.RerenderFilmRequest, name=TEXT,
                                                 first_frame=INT32, last_frame=INT32)),
    st.tuples(st.just("ListExecutions"), st.builds(pb.ListExecutionsRequest, parent=TEXT,
                                                   page_size=INT32, page_token=TEXT)),
    st.tuples(st.just("WatchFilm"), st.builds(pb.WatchFilmRequest, name=TEXT,
                                              after_sequence=st.integers(-(2**63), 2**63 - 1))),
    st.tuples(st.just("StreamFrames"), st.builds(pb.StreamFramesRequest, name=TEXT,
                                                 start_scene_id=TEXT, start_frame=INT32,
                                                 encoding=INT32, jpeg_quality=INT32)),
    st.tuples(st.just("GetArtifact"), st.builds(pb.GetArtifactRequest, name=TEXT, scene_id=TEXT)),
    st.tuples(st.just("GetMedia"), st.builds(pb.GetMediaRequest, name=TEXT | st.just(
        "media/" + "0" * 64))),
    st.tuples(st.just("ListMedia"), st.builds(pb.ListMediaRequest, page_size=INT32,
                                              page_token=TEXT)),
)
# An upload: any mix of metadata and data messages, bytes that are media or not (a tiny
# PNG, its truncations, noise), chunks up to just over the 1 MiB limit.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
                    "53de0000000c4944415408d763f8cfc0000003010100c9fe92ef0000000049454e44ae426082")
MEDIA = st.builds(pb.Media, name=TEXT, display_name=TEXT, rights=st.builds(
    pb.Rights, holder=TEXT, reference=TEXT))
CHUNK = st.one_of(st.binary(max_size=64), st.sampled_from(
    [PNG, PNG[:20], PNG[:-5], b"\0" * (1024 * 1024 + 1)]))
UPLOAD = st.lists(st.one_of(st.builds(pb.UploadMediaRequest, media=MEDIA),
                            st.builds(pb.UploadMediaRequest, data=CHUNK)), max_size=5)
BOARD = {"title": "steady", "fps": 16, "width": 32, "height": 32, "steps": 6,
         "scenes": [{"id": "a", "prompt": "a fox", "frames": 17, "seed": 4},
                    {"id": "b", "prompt": "a boat", "frames": 9, "seed": 5}]}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    server, director = local_server("tiny", root / "art", Authenticator.from_tokens({TOKEN: "t"}),
                                    ServerConfig(port=0), max_unfinished_per_tenant=3)
    channel = grpc.insecure_channel(server.address)
    yield server, pb_grpc.FilmServiceStub(channel)
    channel.close()
    server.stop(grace=0.5)
    director.stop()


def call(stub, method: str, request, token: str | None = TOKEN) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    try:
        result = getattr(stub, method)(request, metadata=metadata, timeout=10)
        if method in ("WatchFilm", "StreamFrames", "GetArtifact"):
            for _ in zip(range(3), result, strict=False):  # a few messages; then cancel
                pass
            result.cancel()
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        return err.code()


@SETTINGS
@given(REQUESTS, st.sampled_from([TOKEN, None, "wrong-token-abcdefghij", "Bearer x\x00"]))
def test_hostile_messages_get_deliberate_statuses(fuzz_server, req, token):
    _, stub = fuzz_server
    method, request = req
    code = call(stub, method, request, token if token and "\x00" not in token else None)
    assert code in OK_CODES, (method, request, code)
    if code == grpc.StatusCode.OK and method == "CreateFilm":
        pass  # a random film that happens to be valid is fine; quotas bound how many


@SETTINGS
@given(UPLOAD, st.sampled_from([TOKEN, None]))
def test_hostile_uploads_get_deliberate_statuses(fuzz_server, messages, token):
    _, stub = fuzz_server
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    try:
        media = stub.UploadMedia(iter(messages), metadata=metadata, timeout=10)
    except grpc.RpcError as err:
        assert err.code() in OK_CODES, (messages, err.code(), err.details())
        return
    # Accepted: metadata first, then bytes that decode (the PNG, whole), named by their hash.
    sent = b"".join(m.data for m in messages[1:])
    assert messages[0].WhichOneof("payload") == "media" and sent.startswith(PNG), messages
    assert media.name == "media/" + hashlib.sha256(sent).hexdigest()
    assert media.kind == pb.Media.KIND_IMAGE


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from(["CreateFilm", "GetFilm", "StreamFrames"]))
def test_undecodable_bytes_never_crash_the_server(fuzz_server, data, method):
    server, _ = fuzz_server
    with grpc.insecure_channel(server.address) as channel:
        raw = channel.unary_stream if method == "StreamFrames" else channel.unary_unary
        rpc = raw(f"/reelfarm.v1.FilmService/{method}", request_serializer=None,
                  response_deserializer=None)
        try:
            result = rpc(data, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10)
            if method == "StreamFrames":
                list(zip(range(2), result, strict=False))
        except grpc.RpcError as err:
            assert err.code() in OK_CODES | {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def test_an_accepted_film_renders_identically_while_fuzzing_runs(fuzz_server):
    """Run after the fuzz tests above in this module (pytest keeps file order)."""
    server, _ = fuzz_server
    from tests.serving.test_ray_runtime import inline_frames

    with Client(server.address, token=TOKEN) as client:
        film = client.submit(BOARD)
        done = film.wait()
        assert pb.Film.State.Name(done.state) == "STATE_SUCCEEDED", done.state_reason
        frames = np.stack([f.to_array() for f in film.frames()])
    assert np.array_equal(frames, inline_frames(BOARD))
