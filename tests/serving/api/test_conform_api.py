"""A served film with `delivery:`: the conform is made where the server assembles film.mp4,
and GetArtifact(rendition=DELIVERY) returns it, labelled, signed, with its manifest."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import grpc
import pytest

from farm.api import convert
from farm.api.protos import pb
from farm.client.errors import InvalidArgumentError
from farm.media.credentials import read_credentials
from tests.serving.api.helpers import tiny_board, wait_final

pytestmark = [pytest.mark.grpc, pytest.mark.model]

DELIVERY = {"fps": 24, "width": 64, "height": 64, "scale": "bicubic"}


def test_a_served_film_delivers_its_conform(connect, tmp_path):
    client = connect("alice")
    handle = client.submit(tiny_board(delivery=DELIVERY))
    film = wait_final(handle)
    assert convert.state_word(film.state) == "SUCCEEDED", film.state_reason
    d = film.delivery  # the resolved delivery, every field set
    assert (d.fps, d.width, d.height, d.scale, d.fps_method, d.fit) == (
        24, 64, 64, pb.Delivery.SCALE_BICUBIC, pb.Delivery.FPS_METHOD_DROP,
        pb.Delivery.FIT_UNSPECIFIED)
    mp4, manifest = handle.download(tmp_path / "delivery.mp4", delivery=True)
    with av.open(str(mp4)) as c:
        stream = c.streams.video[0]
        assert (stream.average_rate, stream.width, stream.height) == (24, 64, 64)
        times = [f.pts * f.time_base for f in c.decode(stream)]
        assert c.metadata["ai_generated"] == "AI-generated"
    assert times == [Fraction(k, 24) for k in range(2 * 13)]  # 9 @16 -> floor(13.5) each
    record = json.loads(manifest.read_text())["deliverable"]["conform"]
    assert record["fps"] == {"from": 16, "to": 24} and record["scale"] == "bicubic"
    assert read_credentials(mp4).valid
    *pngs, folder_manifest = handle.download(tmp_path / "s1", scene_id="s1", delivery=True)
    assert [p.name for p in pngs] == [f"s1.{k:04d}.png" for k in range(1, 14)]
    assert read_credentials(pngs[0]).record["deliverable"]["conform"] == record
    assert folder_manifest.name == "provenance.json"


def test_the_delivery_rendition_needs_a_delivery(connect, tmp_path):
    handle = connect("alice").submit(tiny_board(scenes=1, frames=1))
    wait_final(handle)
    with pytest.raises(InvalidArgumentError) as info:
        handle.download(tmp_path / "x.mp4", delivery=True)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "rendition" in str(info.value)


def test_an_invalid_delivery_is_refused_naming_the_field(connect):
    film = convert.storyboard_to_film(tiny_board(delivery={"fps": 29, "fps_method": "blend"}))
    assert convert.film_to_storyboard(film)["delivery"] == {"fps": 29, "fps_method": "blend"}
    with pytest.raises(InvalidArgumentError) as info:  # sent as is: the server checks it
        connect("alice").call("CreateFilm", pb.CreateFilmRequest(film=film))
    assert "film.delivery.fps" in str(info.value.details) and "24, 25, 30" in str(info.value)
