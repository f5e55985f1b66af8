"""Media over the API on a real server (`serve --local`'s runtime, real gRPC): uploads are
content-addressed per tenant, every media-conditioned family renders through the API with
the same pixels (and sound) as `reelfarm render`, bad media is refused by field before any
work, media survive a restart, and a film whose media went missing fails with a reason."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import yaml
from PIL import Image

from farm.api.auth import Authenticator
from farm.api.protos import pb, pb_grpc
from farm.api.server import ServerConfig, local_server
from farm.cli import main
from farm.client import Client, InvalidArgumentError, NotFoundError
from farm.media.library import MediaLimits
from farm.media.movie import probe_audio
from tests.serving.api.helpers import TOKEN, TOKENS, wait_final
from tests.serving.media_films import FILMS, storyboard, write_media

pytestmark = [pytest.mark.grpc, pytest.mark.model]
MODELS = [f"tiny-{family}" for family in FILMS]


def start(root, **options):
    return local_server(MODELS, root / "art", Authenticator.from_tokens(TOKENS),
                        ServerConfig(port=0), db=f"sqlite:///{root / 'jobs.db'}", **options)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return write_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    server, director = start(tmp_path_factory.mktemp("served"))
    yield server
    server.stop(grace=1.0)
    director.stop()


def client(server, tenant="alice") -> Client:
    return Client(server.address, token=TOKEN[tenant])


def board_file(media, family: str, **changes) -> str:
    data = storyboard(family) | changes
    path = media / f"{family}-{abs(hash(repr(sorted(changes.items()))))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def pngs(folder) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]


@pytest.mark.parametrize("family", list(FILMS))
def test_every_media_family_renders_through_the_api_as_locally(farm, media, tmp_path, family):
    path = board_file(media, family)
    assert main(["render", path, "-o", str(tmp_path / "local.mp4"),
                 "--frames-dir", str(tmp_path / "frames")]) == 0
    with client(farm) as c:
        film = c.submit(path)
        done = wait_final(film, timeout=300)
        assert done.state == pb.Film.STATE_SUCCEEDED, done.state_reason
        served = [f.to_array() for f in film.frames()]
        film.download(tmp_path / "served.mp4")
    local = pngs(tmp_path / "frames" / "a")
    assert len(served) == len(local) == 9
    assert all(np.array_equal(s, lo) for s, lo in zip(served, local, strict=True))
    # The served film names its inputs as media resources, and carries the scene's sound.
    scene = done.scenes[0]
    named = [scene.image, scene.pose_video, *scene.references, scene.audio]
    assert all(n.startswith("media/") for n in named if n) and scene.audio
    served_audio, local_audio = probe_audio(tmp_path / "served.mp4"), probe_audio(
        tmp_path / "local.mp4")
    assert np.array_equal(served_audio["samples"], local_audio["samples"])  # same AAC stream
    # Both deliverables name the photo by hash, with the storyboard's rights statement.
    from farm.media.credentials import read_credentials

    photos = []
    for movie in (tmp_path / "local.mp4", tmp_path / "served.mp4"):
        record = read_credentials(movie).record
        photos.append({(i["sha256"], i["rights"]["holder"]) for i in record["inputs"]
                       if "rights" in i})
    # (a file keeps the rights statement it was uploaded with for every later film)
    assert len(photos[0]) == 1 and photos[0] <= photos[1]


def test_uploads_are_content_addressed_and_per_tenant(farm, media):
    with client(farm) as alice, client(farm, "bob") as bob:
        first = alice.upload(media / "hero.png")
        again = alice.upload(media / "hero.png")
        assert first.name == again.name and first.name.startswith("media/")
        assert (first.kind, first.mime_type, first.width, first.height) == (
            pb.Media.KIND_IMAGE, "image/png", 24, 40)
        voice = alice.upload(media / "voice.flac")
        assert voice.kind == pb.Media.KIND_AUDIO and voice.duration.ToMilliseconds() == 1200
        pose = alice.upload(media / "pose.mp4")
        assert (pose.kind, pose.mime_type) == (pb.Media.KIND_VIDEO, "video/mp4")
        assert pose.duration.ToNanoseconds() == 1_666_666_667
        assert (pose.width, pose.height) == (48, 40)
        with pytest.raises(NotFoundError):
            bob.call("GetMedia", pb.GetMediaRequest(name=first.name))
        assert first.name not in {m.name for m in bob.list_media()}
        assert first.name in {m.name for m in alice.list_media()}
        # bob's film cannot name alice's photo
        with pytest.raises(InvalidArgumentError) as err:
            bob.call("CreateFilm", pb.CreateFilmRequest(film=pb.Film(
                title="t", fps=16, width=32, height=32, model="tiny-i2v-a14b", steps=2,
                scenes=[pb.Scene(id="a", prompt="p", frames=9, image=first.name)])))
        assert ("film.scenes[0].image", f"no media {first.name}: upload it first (UploadMedia)"
                ) in err.value.violations


def test_a_resubmit_uploads_nothing(farm, media, monkeypatch):
    path = board_file(media, "vace-a14b", title="again")
    with client(farm) as c:
        c.submit(path)
        sent = []
        upload = c.stub.UploadMedia
        monkeypatch.setattr(c.stub, "UploadMedia",
                            lambda messages, **kw: sent.append(1) or upload(messages, **kw))
        wait_final(c.submit(path), timeout=300)
    assert sent == []


def raw_upload(server, messages, tenant="alice"):
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.FilmServiceStub(channel)
        return stub.UploadMedia(iter(messages), metadata=(
            ("authorization", f"Bearer {TOKEN[tenant]}"),), timeout=30)


def violations(err: grpc.RpcError) -> dict[str, str]:
    from farm.client.errors import from_rpc_error

    return dict(from_rpc_error(err).violations)


def test_bad_uploads_are_refused_naming_what_is_wrong(farm, media):
    meta = pb.UploadMediaRequest(media=pb.Media(display_name="x"))
    cases = [
        ([pb.UploadMediaRequest(data=b"abc")], "media", "first message"),
        ([meta, pb.UploadMediaRequest(data=b"\0" * (1024 * 1024 + 1))], "data", "at most 1048576"),
        ([meta, pb.UploadMediaRequest(data=(media / "hero.png").read_bytes()[:200])], "data",
         "cannot be decoded"),
        ([meta, pb.UploadMediaRequest(data=b"just some text")], "data", "not an image, a video"),
        ([meta], "data", "empty"),
        ([pb.UploadMediaRequest(media=pb.Media(rights=pb.Rights(holder="Jane"))),
          pb.UploadMediaRequest(data=b"x")], "media.rights.reference", "required"),
    ]
    for messages, field, words in cases:
        with pytest.raises(grpc.RpcError) as err:
            raw_upload(farm, messages)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in violations(err.value)[field], (field, violations(err.value))


def test_media_of_the_wrong_kind_or_size_is_refused_by_scene_field(farm, media):
    film = storyboard("i2v-a14b")
    film["scenes"][0] |= {"image": "voice.flac", "last_image": "pose.mp4"}
    film["rights"] = []
    film["scenes"].append({"id": "b", "prompt": "p", "frames": 33, "seed": 1,
                           "image": "start.png", "audio": "voice.flac"})
    (media / "wrong.yaml").write_text(yaml.safe_dump(film))
    with client(farm) as c, pytest.raises(InvalidArgumentError) as err:
        c.submit(media / "wrong.yaml")
    found = dict(err.value.violations)
    assert "is an audio; `image` takes an image" in found["film.scenes[0].image"]
    assert "is a video; `last_image` takes an image" in found["film.scenes[0].last_image"]
    assert len(found) == 2  # scene b is fine: audio shorter than its frames is padded
    # a control video shorter than its scene (17 frames at 16 fps for 33 frames)
    film = storyboard("vace-a14b")
    film["scenes"][0]["frames"] = 33
    (media / "short.yaml").write_text(yaml.safe_dump(film))
    with client(farm) as c, pytest.raises(InvalidArgumentError) as err:
        c.submit(media / "short.yaml")
    (path, message), = err.value.violations
    assert path == "film.scenes[0].control_video" and "the scene needs 2.062 s" in message
    assert "/blobs/" not in message and "media/" in message  # the server's paths stay its own


def test_limits_and_rights_are_enforced_per_server(tmp_path, media):
    server, director = start(tmp_path, media_limits=MediaLimits(max_bytes=20_000, max_seconds=1.0),
                             require_rights=True)
    try:
        with client(server) as c:
            with pytest.raises(InvalidArgumentError) as err:
                c.upload(media / "voice.flac")  # 23 kB
            assert "larger than this server's limit of 20000 bytes" in dict(
                err.value.violations)["data"]
            with pytest.raises(InvalidArgumentError) as err:
                c.upload(media / "pose.mp4")  # 1.67 s
            assert "plays 1.7 s; this server's limit is 1 s" in dict(err.value.violations)["data"]
            film = storyboard("ti2v-5b")
            film["scenes"][0].pop("audio")
            board = media / "rights.yaml"
            board.write_text(yaml.safe_dump(film | {"rights": []}))
            with pytest.raises(InvalidArgumentError) as err:
                c.submit(board)
            assert "has no rights statement" in dict(err.value.violations)[
                "film.scenes[0].image"]
            board.write_text(yaml.safe_dump(film))  # with the photo's rights statement
            done = wait_final(c.submit(board), timeout=300)
            assert done.state == pb.Film.STATE_SUCCEEDED, done.state_reason
    finally:
        server.stop(grace=0.5)
        director.stop()


def test_media_survive_a_restart_and_missing_media_fail_a_film(tmp_path, media):
    server, director = start(tmp_path)
    try:
        with client(server) as c:
            hero = c.upload(media / "start.png", rights=pb.Rights(holder="J", reference="R"))
            # the storyboard's own rights statement replaces the one uploaded before
            film = c.submit(board_file(media, "ti2v-5b", steps=8)).name
            director.pause_film(film.removeprefix("films/"), "alice")
    finally:
        server.stop(grace=0.5)
        director.stop()
    blob = tmp_path / "art" / "media" / "blobs" / hero.name.removeprefix("media/")
    blob.unlink()
    server, director = start(tmp_path)
    try:
        with client(server) as c:
            kept = c.call("GetMedia", pb.GetMediaRequest(name=hero.name))
            assert (kept.rights.holder, kept.display_name) == ("Jane Doe (pictured)", "start.png")
            handle = c.film(film)
            handle.resume()
            done = wait_final(handle, timeout=120)
            assert done.state == pb.Film.STATE_FAILED
            assert "cannot read" in done.state_reason, done.state_reason
    finally:
        server.stop(grace=0.5)
        director.stop()


def test_a_timeline_whose_clips_carry_images_renders_through_the_api(farm, media, tmp_path):
    import opentimelineio as otio

    timeline = otio.schema.Timeline(name="cut", metadata={"reelfarm": {
        "width": 32, "height": 32, "model": "tiny-i2v-a14b", "steps": 2}})
    track = otio.schema.Track(name="V1")
    for i, (image, frames) in enumerate((("start.png", 9), ("end.png", 5))):
        track.append(otio.schema.Clip(
            name=f"shot{i}", metadata={"reelfarm": {"prompt": f"shot {i}", "seed": i,
                                                    "image": f"{media}/{image}"}},
            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, 16),
                                                 otio.opentime.RationalTime(frames, 16))))
    timeline.tracks.append(track)
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(timeline, str(path))
    assert main(["render", str(path), "-o", str(tmp_path / "local.mp4"),
                 "--frames-dir", str(tmp_path / "frames")]) == 0
    with client(farm) as c:
        film = c.submit(path)
        done = wait_final(film, timeout=300)
        assert done.state == pb.Film.STATE_SUCCEEDED, done.state_reason
        assert [s.image.startswith("media/") for s in done.scenes] == [True, True]
        served = [f.to_array() for f in film.frames()]
    local = pngs(tmp_path / "frames" / "shot0") + pngs(tmp_path / "frames" / "shot1")
    assert len(served) == len(local) == 14
    assert all(np.array_equal(s, lo) for s, lo in zip(served, local, strict=True))


def test_everything_served_carries_the_label_and_signed_credentials(farm, media, tmp_path):
    """Streamed PNG and JPEG frames, fetched PNGs and the fetched mp4: labelled, signed by
    the farm, with a record naming the input media by hash and their rights statements."""
    from farm.media.credentials import read_credentials
    from farm.media.stills import png_text

    with client(farm) as c:
        film = c.submit(board_file(media, "s2v-14b", title="labelled"))
        done = wait_final(film, timeout=300)
        assert done.state == pb.Film.STATE_SUCCEEDED, done.state_reason
        frames = list(film.frames())
        jpegs = list(film.frames(encoding="jpeg"))
        raw = list(film.frames(encoding="rgb24"))
        movie = film.download(tmp_path / "film.mp4")
        pngs_ = film.download(tmp_path / "pngs", scene_id="a")
    assert {f.label for f in frames + jpegs + raw} == {"AI-generated"}
    streamed = tmp_path / "streamed.png"
    streamed.write_bytes(frames[0].data)
    assert png_text(streamed)["AI-Generated"] == "AI-generated"
    assert b"AI-generated with reelfarm" in jpegs[0].data[:2000]
    assert [p.name for p in movie] == ["film.mp4", "film.mp4.provenance.json"]
    assert pngs_[-1].name == "provenance.json" and len(pngs_) == 10
    for path in (streamed, pngs_[0], movie[0]):
        cred = read_credentials(path)
        assert cred.present and cred.valid, (path, cred.problems)
        assert cred.source_type.endswith("trainedAlgorithmicMedia")
        inputs = {(i["field"], i["location"]): i for i in cred.record["inputs"]}
        hero = inputs[("image", "hero.png")]
        assert hero["rights"] == {"holder": "Jane Doe (pictured)", "reference": "release RF-2291"}
        assert hero["sha256"] == done.scenes[0].image.removeprefix("media/")
        assert ("audio", "voice.flac") in inputs and ("pose_video", "pose.mp4") in inputs
    assert main(["verify", str(movie[0]), str(pngs_[0]), str(tmp_path / "pngs" / "a")]) == 0
    data = bytearray(movie[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    movie[0].write_bytes(bytes(data))
    assert main(["verify", str(movie[0])]) == 1


def test_the_async_sdk_uploads_and_a_given_key_signs(tmp_path, media):
    """AsyncClient.submit uploads as Client.submit does; a server given --signing-key
    signs what it delivers with that key (a chain built here: root, intermediate, signer)."""
    import asyncio

    from farm.client import AsyncClient
    from farm.media.credentials import SigningConfig, read_credentials
    from tests.pki import c2pa_chain

    key, chain, _ = c2pa_chain(tmp_path, "Northlight Studio")
    server, director = start(tmp_path, signer=SigningConfig(key, chain).load())

    async def render() -> list:
        async with AsyncClient(server.address, token=TOKEN["alice"]) as c:
            film = await c.submit(board_file(media, "i2v-a14b", title="async"))
            await film.wait()
            return await film.download(tmp_path / "film.mp4")
    try:
        movie, sidecar = asyncio.run(render())
    finally:
        server.stop(grace=0.5)
        director.stop()
    cred = read_credentials(movie)
    assert cred.valid and cred.signer.startswith("Northlight Studio"), cred
    assert sidecar.name == "film.mp4.provenance.json"
