"""Delivery conform (`delivery:`): the frame-count rule, validation, ffmpeg's filters through
PyAV, and a tiny-model film rendered by `reelfarm render` whose delivered mp4, image
sequences, timeline and manifests are read back and checked frame for frame."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest
import yaml
from PIL import Image

from farm.cli import main
from farm.media.conform import conform_clip
from farm.media.credentials import read_credentials
from farm.media.movie import probe_audio
from farm.spec.delivery import (
    DeliverySpec,
    conformed_frames,
    fit_geometry,
    resolve_delivery,
    source_frame,
)
from farm.spec.errors import SpecError
from farm.spec.film import resolve_film
from farm.spec.profiles import profile_for
from farm.spec.storyboard import parse_storyboard
from tests.media_files import write_tone

RT = otio.opentime.RationalTime


# ---- the rule ----------------------------------------------------------------------------

def test_81_frames_at_16_fps_are_121_frames_at_24_the_half_frame_dropped():
    # 81 / 16 = 5.0625 s = 121.5 frames at 24 fps: whole frames only, the clip's 121
    assert conformed_frames(81, 16, 24) == 121
    assert Fraction(121, 24) <= Fraction(81, 16) < Fraction(122, 24)
    assert [conformed_frames(81, 16, r) for r in (24, 25, 30, 48, 50, 60)] == [
        121, 126, 151, 243, 253, 303]
    assert conformed_frames(1, 30, 24) == 0  # shorter than one delivered frame


@pytest.mark.parametrize("n", [1, 5, 17, 33, 81, 121, 161, 481])
@pytest.mark.parametrize("rates", [(16, 24), (16, 25), (16, 30), (16, 60), (24, 25),
                                   (30, 24), (24, 60), (30, 25)])
def test_the_rule_is_opentimelineio_s_whole_frames(n, rates):
    fps_in, fps_out = rates
    m = conformed_frames(n, fps_in, fps_out)
    assert m == RT(n, fps_in).rescaled_to(fps_out).to_frames()
    # every delivered frame lies wholly inside the render; one more would not
    assert Fraction(m, fps_out) <= Fraction(n, fps_in) < Fraction(m + 1, fps_out)
    # drop: the frame on screen at each delivered frame's start
    assert all(Fraction(source_frame(k, fps_in, fps_out), fps_in) <= Fraction(k, fps_out)
               < Fraction(source_frame(k, fps_in, fps_out) + 1, fps_in) for k in range(m))


def _delivery(**spec):
    d, errors = resolve_delivery(DeliverySpec(**spec), 16, 64, 48)
    assert not errors, errors
    return d


def test_fit_pads_or_crops_centred_to_even_sizes():
    assert fit_geometry(_delivery(width=128, height=96)) == (128, 96, 0, 0)  # same aspect
    assert fit_geometry(_delivery(width=128, height=72, fit="pad")) == (96, 72, 16, 0)
    assert fit_geometry(_delivery(width=128, height=72, fit="crop")) == (128, 96, 0, 12)
    assert fit_geometry(_delivery(width=64, height=64, fit="pad")) == (64, 48, 0, 8)


# ---- validation --------------------------------------------------------------------------

def _errors(delivery: dict) -> list[str]:
    board = {"title": "t", "fps": 16, "width": 64, "height": 48, "delivery": delivery,
             "scenes": [{"id": "a", "prompt": "p", "frames": 5}]}
    with pytest.raises(SpecError) as info:
        resolve_film(parse_storyboard(board), profile_for("t2v-a14b"))
    return [str(e) for e in info.value.errors]


def test_validation_names_the_field_and_the_allowed_values():
    assert _errors({"fps": 29}) == [
        "delivery.fps: 29 is not a delivery rate; allowed: 24, 25, 30, 48, 50, 60, "
        "or the film's own 16"]
    assert _errors({"width": 1921, "height": 1080, "fit": "pad"}) == [
        "delivery.width: 1921 is odd; 4:2:0 video needs even sizes (nearest: 1920 or 1922)"]
    assert _errors({"width": 4096, "height": 2160, "fit": "crop"}) == [
        "delivery.width: 4096x2160 is larger than UHD; allowed: up to 3840x2160 "
        "(or 2160x3840)"]
    assert _errors({"width": 1920}) == [
        "delivery.height: give it with delivery.width (both or neither; neither keeps the "
        "render size)"]
    [fit] = _errors({"width": 1920, "height": 1080})
    assert fit.startswith("delivery.fit: the render is 64x48 and the delivery 1920x1080") \
        and "pad (black bars) or crop" in fit


def test_schema_errors_name_the_allowed_words():
    for delivery, field in (({"fps_method": "optical"}, "delivery.fps_method"),
                            ({"scale": "sinc"}, "delivery.scale"),
                            ({"fit": "stretch"}, "delivery.fit"),
                            ({"fps": 24, "speed": 2}, "delivery.speed")):
        board = {"title": "t", "fps": 16, "width": 64, "height": 48, "delivery": delivery,
                 "scenes": [{"id": "a", "prompt": "p", "frames": 5}]}
        with pytest.raises(SpecError) as info:
            parse_storyboard(board)
        [error] = info.value.errors
        assert error.path == field, error
    [error] = _schema_error({"fps_method": "optical"})
    assert "'drop', 'blend' or 'interpolate'" in error.message


def _schema_error(delivery: dict):
    board = {"title": "t", "fps": 16, "width": 64, "height": 48, "delivery": delivery,
             "scenes": [{"id": "a", "prompt": "p", "frames": 5}]}
    with pytest.raises(SpecError) as info:
        parse_storyboard(board)
    return info.value.errors


# ---- ffmpeg's filters --------------------------------------------------------------------

def _clip(n: int, w: int = 64, h: int = 48) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("method", ["drop", "blend", "interpolate"])
def test_every_method_gives_the_rule_s_count(method):
    for n, fps, expected in ((81, 24, 121), (17, 25, 26), (5, 60, 18), (1, 24, 1)):
        out = conform_clip(_delivery(fps=fps, fps_method=method), _clip(n))
        assert len(out) == expected and out[0].shape == (48, 64, 3), (n, fps)


def test_drop_delivers_the_rendered_frame_on_screen_bit_for_bit():
    frames = _clip(81)
    out = conform_clip(_delivery(fps=24), frames)
    assert all(np.array_equal(o, frames[source_frame(k, 16, 24)]) for k, o in enumerate(out))


def test_a_clip_shorter_than_one_delivered_frame_delivers_none():
    d, _ = resolve_delivery(DeliverySpec(fps=24), 30, 64, 48)
    assert conform_clip(d, _clip(1)) == []


# ---- a film rendered by `reelfarm render` ------------------------------------------------

DELIVERY = {"fps": 24, "width": 64, "height": 36, "fit": "pad", "scale": "lanczos",
            "fps_method": "blend"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("conform")
    write_tone(root / "tone.flac", 6.0)
    board = {"title": "Conform", "fps": 16, "width": 32, "height": 32, "model": "tiny",
             "steps": 2, "delivery": DELIVERY,
             "scenes": [{"id": "s010", "prompt": "a red fox", "frames": 81, "seed": 1,
                         "audio": "tone.flac"},
                        {"id": "s020", "prompt": "a blue bird", "frames": 17, "seed": 2}]}
    (root / "film.yaml").write_text(yaml.safe_dump(board))
    out = root / "out"
    assert main(["render", str(root / "film.yaml"), "-o", str(out / "film.mp4"),
                 "--frames-dir", str(out / "frames"), "--otio-out", str(out / "film.otio"),
                 "--label"]) == 0
    return out


@pytest.mark.model
def test_the_delivered_mp4_has_the_rule_s_frames_at_24_fps_and_the_delivery_size(rendered):
    with av.open(str(rendered / "film.delivery.mp4")) as c:
        stream = c.streams.video[0]
        assert (stream.average_rate, stream.width, stream.height) == (24, 64, 36)
        times = [f.pts * f.time_base for f in c.decode(stream)]
        assert c.metadata["ai_generated"] == "AI-generated" and c.metadata["timecode"] == (
            "00:00:00:00")
    assert len(times) == 121 + 25  # s010: 81 @16 -> 121 @24; s020: 17 -> floor(25.5)
    assert times == [Fraction(k, 24) for k in range(146)]  # exact, no drift
    with av.open(str(rendered / "film.mp4")) as c:  # the render is untouched
        assert c.streams.video[0].frames in (0, 98) and c.streams.video[0].average_rate == 16
    sound = probe_audio(rendered / "film.delivery.mp4")  # the sound follows the conform
    assert sound["samples"].shape[1] >= 146 * 48000 // 24


@pytest.mark.model
def test_the_delivered_sequences_count_and_size(rendered):
    for scene, n in (("s010", 121), ("s020", 25)):
        files = sorted((rendered / "frames_delivery" / scene).glob("*.png"))
        assert [p.name for p in files] == [f"{scene}.{k:04d}.png" for k in range(1, n + 1)]
        with Image.open(files[0]) as im:
            assert im.size == (64, 36) and im.text["AI-Generated"] == "AI-generated"
        assert len(list((rendered / "frames" / scene).glob("*.png"))) == {"s010": 81,
                                                                          "s020": 17}[scene]


@pytest.mark.model
def test_the_timeline_carries_render_and_delivery_at_exact_rates(rendered):
    tl = otio.adapters.read_from_file(str(rendered / "film.otio"))
    clips = list(tl.find_clips())
    for clip, (n, m) in zip(clips, ((81, 121), (17, 25)), strict=True):
        refs = clip.media_references()
        render, delivery = refs["DEFAULT_MEDIA"], refs["delivery"]
        assert (render.rate, render.available_range.duration) == (16, RT(n, 16))
        assert (delivery.rate, delivery.available_range.duration) == (24, RT(m, 24))
        assert delivery.target_url_base == f"frames_delivery/{clip.name}/"
        assert clip.source_range.duration == RT(n, 16)  # the cut stays the render's
        assert clip.metadata["reelfarm_render"]["delivery_frames"] == m
    assert tl.metadata["reelfarm"]["delivery"] == DELIVERY  # re-imports as the same film
    assert tl.metadata["reelfarm_render"]["delivery"]["fps"] == {"from": 16, "to": 24}


@pytest.mark.model
def test_provenance_says_what_was_conformed(rendered):
    manifest = json.loads((rendered / "film.delivery.mp4.provenance.json").read_text())
    conform = manifest["deliverable"]["conform"]
    assert conform["fps"] == {"from": 16, "to": 24} and conform["fps_method"] == "blend"
    assert conform["size"] == {"from": "32x32", "to": "64x36"}
    assert (conform["scale"], conform["fit"]) == ("lanczos", "pad")
    assert conform["clips"] == [{"scene": "s010", "frames": 121},
                                {"scene": "s020", "frames": 25}]
    assert "framerate=fps=24" in conform["filters"] and "trim=end_frame=" in conform["filters"]
    assert manifest["label"] == "AI-generated"
    folder = json.loads((rendered / "frames_delivery" / "s020" / "provenance.json").read_text())
    assert folder["deliverable"]["frames"] == 25 and folder["deliverable"]["conform"] == conform
    render = json.loads((rendered / "film.mp4.provenance.json").read_text())
    assert "conform" not in render["deliverable"]
    creds = read_credentials(rendered / "film.delivery.mp4")  # signed, and says it too
    assert creds.valid and creds.record["deliverable"]["conform"] == conform
    assert main(["verify", str(rendered / "film.delivery.mp4"),
                 str(rendered / "frames_delivery" / "s010")]) == 0


@pytest.mark.model
def test_delivery_flags_need_a_delivery(tmp_path):
    board = {"title": "t", "fps": 16, "width": 32, "height": 32, "steps": 1,
             "scenes": [{"id": "a", "prompt": "p", "frames": 1}]}
    (tmp_path / "f.yaml").write_text(yaml.safe_dump(board))
    assert main(["render", str(tmp_path / "f.yaml"), "-o", str(tmp_path / "f.mp4"),
                 "--delivery-out", str(tmp_path / "d.mp4")]) == 2
    assert not Path(tmp_path / "f.mp4").exists()


# ---- the delivery travels: job store records and the API -------------------------------

def _film_with_delivery():
    board = {"title": "t", "fps": 16, "width": 64, "height": 48, "delivery": DELIVERY,
             "scenes": [{"id": "a", "prompt": "p", "frames": 5}]}
    return board, resolve_film(parse_storyboard(board), profile_for("t2v-a14b"), model="tiny")


def test_a_stored_film_keeps_its_delivery():
    from farm.spec.serde import film_from_dict, film_to_dict

    _, film = _film_with_delivery()
    data = json.loads(json.dumps(film_to_dict(film)))  # what the job store keeps
    assert film_from_dict(data) == film and film.delivery.fps == 24
    data.pop("delivery")  # a record written before delivery conform existed
    assert film_from_dict(data).delivery is None


def test_the_api_carries_the_delivery_both_ways():
    from farm.api import convert

    board, _ = _film_with_delivery()
    pb_film = convert.storyboard_to_film(board)
    assert (pb_film.delivery.fps, pb_film.delivery.width, pb_film.delivery.height) == (24, 64, 36)
    assert convert.film_to_storyboard(pb_film)["delivery"] == DELIVERY
    del board["delivery"]
    assert not convert.storyboard_to_film(board).HasField("delivery")


# ---- a timeline: gaps and the start timecode conform by the same rule ---------------------

@pytest.mark.model
def test_a_timeline_with_a_gap_and_a_start_timecode(tmp_path):
    tl = otio.schema.Timeline(name="Cut", global_start_time=RT(16 * 3600, 16))  # 01:00:00:00
    tl.metadata["reelfarm"] = {"width": 32, "height": 32, "steps": 1, "model": "tiny",
                               "delivery": {"fps": 25}}
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    span = otio.opentime.TimeRange
    for name, frames in (("sh010", 9), (None, 3), ("sh020", 5)):
        if name is None:
            track.append(otio.schema.Gap(source_range=span(RT(0, 16), RT(frames, 16))))
            continue
        clip = otio.schema.Clip(name=name, source_range=span(RT(0, 16), RT(frames, 16)))
        clip.metadata["reelfarm"] = {"prompt": f"prompt {name}"}
        track.append(clip)
    otio.adapters.write_to_file(tl, str(tmp_path / "cut.otio"))
    assert main(["render", str(tmp_path / "cut.otio"), "-o", str(tmp_path / "cut.mp4")]) == 0
    with av.open(str(tmp_path / "cut.delivery.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.average_rate == 25 and c.metadata["timecode"] == "01:00:00:00"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
    # 9 -> floor(14.06) = 14, the gap 3 -> floor(4.69) = 4 black, 5 -> floor(7.81) = 7
    assert len(frames) == 14 + 4 + 7
    assert all(f.max() <= 16 for f in frames[14:18]) and frames[13].max() > 16
    manifest = json.loads((tmp_path / "cut.delivery.mp4.provenance.json").read_text())
    assert manifest["deliverable"]["conform"]["clips"] == [
        {"scene": "sh010", "frames": 14}, {"scene": None, "frames": 4},
        {"scene": "sh020", "frames": 7}]
