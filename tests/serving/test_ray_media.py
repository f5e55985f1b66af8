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
