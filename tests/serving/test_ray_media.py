"""Media films on the Ray Serve app, through Serve's gRPC proxy as a studio would send them
(`Client.submit` uploads the storyboard's files with the client-streaming UploadMedia):
every media-conditioned family renders with the same pixels as `reelfarm render`. VACE
runs in expert pools, so its conditioning crosses replicas as Ray objects."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from farm.api.protos import pb
from farm.cli import main
from farm.client import Client
from farm.media.credentials import read_credentials
from farm.media.movie import probe_audio
from tests.serving.api.helpers import wait_final
from tests.serving.media_films import FILMS, storyboard, write_media

pytestmark = [pytest.mark.ray, pytest.mark.grpc, pytest.mark.model]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return write_media(tmp_path_factory.mktemp("ray-media"))


@pytest.mark.parametrize("family", list(FILMS))
def test_media_family_on_ray_equals_the_local_render(ray_app, media, tmp_path, family):
    from tests.serving.conftest import GRPC_PORT

    path = media / f"{family}.yaml"
    path.write_text(yaml.safe_dump(storyboard(family)))
    assert main(["render", str(path), "-o", str(tmp_path / "local.mp4"),
                 "--frames-dir", str(tmp_path / "frames")]) == 0
    with Client(f"127.0.0.1:{GRPC_PORT}") as client:
        film = client.submit(path)
        done = wait_final(film, timeout=400)
        assert done.state == pb.Film.STATE_SUCCEEDED, done.state_reason
        served = [f.to_array() for f in film.frames()]
        movie, _ = film.download(tmp_path / "served.mp4")
    cred = read_credentials(movie)  # labelled and signed by the cluster's director too
    assert cred.valid and cred.source_type.endswith("trainedAlgorithmicMedia"), cred
    assert probe_audio(movie)["samples"].shape == probe_audio(tmp_path / "local.mp4")[
        "samples"].shape
    local = [np.asarray(Image.open(p).convert("RGB"))
             for p in sorted((tmp_path / "frames" / "a").glob("*.png"))]
    assert len(served) == len(local) == 9
    assert all(np.array_equal(s, lo) for s, lo in zip(served, local, strict=True))
    if family == "vace-a14b":  # expert pools: conditioning encoded on VaceDecode reached
        log = ray_app.work_log.remote().result()  # the VaceHigh / VaceLow replicas
        ran = {w.split("-")[0]: {(k, e) for k, e, _ in entries} for w, entries in log.items()}
        assert ran["vacehigh"] == {("phase", "high")}  # (2 steps: both on the high expert)
        assert ran.get("vacelow", {("phase", "low")}) == {("phase", "low")}
        assert {k for k, _ in ran["vacedecode"]} >= {"prepare", "decode"}


def test_a_large_upload_streams_through_the_serve_proxy(ray_app, tmp_path):
    """Several 1 MiB messages of one client stream reach the director through Serve's
    gRPC proxy, and the media is named by the hash of all of them."""
    import hashlib

    from tests.serving.conftest import GRPC_PORT

    pixels = np.random.default_rng(1).integers(0, 256, (1100, 1100, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "big.png", compress_level=0)  # ~3.6 MB
    data = (tmp_path / "big.png").read_bytes()
    with Client(f"127.0.0.1:{GRPC_PORT}") as client:
        media = client.upload(tmp_path / "big.png")
        assert media.name == "media/" + hashlib.sha256(data).hexdigest()
        assert (media.size_bytes, media.width, media.height) == (len(data), 1100, 1100)
        assert client.upload(tmp_path / "big.png").name == media.name
