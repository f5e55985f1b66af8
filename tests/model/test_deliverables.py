"""Deliverables decode back to the frames written: PNG (8/16 bits) and EXR exactly, the mp4
by count, rate, size, timecode and gap placement; contact sheet, label overlay, audio mux."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from farm.media import stills
from farm.media.contact import thumb_origin, thumbnail_indices
from farm.media.deliverables import DeliverableOptions, Deliverables
from farm.media.movie import mux_audio, probe_audio, sine_wave, timecode
from farm.media.provenance import LABEL, has_label, label_tags
from farm.media.writers import Mp4Writer, probe_video
from farm.spec.timeline import Cut, Slot

pytestmark = pytest.mark.model
W, H = 48, 32


def frames(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]


def every_value() -> np.ndarray:
    """A frame holding all 256 values in every channel (the exactness worst case)."""
    v = np.arange(256, dtype=np.uint8)
    return np.stack([np.resize(v, (16, 48)), np.resize(v[::-1], (16, 48)),
                     np.resize(np.roll(v, 7), (16, 48))], axis=-1)


def test_png_8_and_16_bit_decode_back_exactly_with_the_label(tmp_path):
    frame = every_value()
    p8 = stills.write_png(tmp_path / "a.png", frame, label_tags("png"))
    p16 = stills.write_png(tmp_path / "b.png", frame, label_tags("png"), bits=16)
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(p8)), frame)
    # An independent decoder (FFmpeg's, through PyAV) reads the 16-bit file.
    with av.open(str(p16)) as c:
        decoded = next(c.decode(video=0))
        assert decoded.format.name.startswith("rgb48")
        rgb16 = decoded.to_ndarray(format="rgb48le")
    assert np.array_equal(rgb16, frame.astype(np.uint16) * 257)
    assert np.array_equal((rgb16 // 257).astype(np.uint8), frame)
    for p in (p8, p16):
        assert stills.png_text(p)["AI-Generated"] == LABEL and has_label(p)


def test_exr_is_half_float_linear_and_encodes_back_to_the_exact_frame(tmp_path):
    pytest.importorskip("OpenEXR")
    frame = every_value()
    path = stills.write_exr(tmp_path / "a.exr", frame, label_tags("exr"))
    pixels, header = stills.read_exr(path)
    assert pixels.dtype == np.float16 and pixels.shape == frame.shape
    assert header["aiGenerated"] == LABEL and has_label(path)
    assert np.allclose(pixels, stills.srgb_to_linear(frame), atol=1e-3)
    assert np.array_equal(stills.linear_to_srgb8(pixels), frame)


def render_cut(tmp_path, cut: Cut, scenes: dict[str, list[np.ndarray]], **options):
    opts = DeliverableOptions(mp4=tmp_path / "film.mp4", **options)
    out = Deliverables(opts, cut, 16, W, H, "test")
    for slot in cut.slots:
        if slot.kind == "scene":
            for i, f in enumerate(scenes[slot.scene_id]):
                out.write(slot.scene_id, i, f)
    return out, out.close()


def test_mp4_places_gaps_as_black_frames_with_timecode_and_label(tmp_path):
    scenes = {"a": [np.full((H, W, 3), 200, np.uint8)] * 5,
              "b": [np.full((H, W, 3), 120, np.uint8)] * 9}
    cut = Cut((Slot("gap", 2), Slot("scene", 5, "a"), Slot("gap", 3), Slot("scene", 9, "b"),
               Slot("gap", 4)), start_frame=16 * 3600 + 5)
    out, written = render_cut(tmp_path, cut, scenes)
    info = probe_video(tmp_path / "film.mp4")
    assert (info["frames"], info["fps"], info["width"], info["height"]) == (23, Fraction(16), W, H)
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    # yuv420p moves a grey by a code value or so; black stays black.
    means = np.array([float(im.mean()) for im in info["images"]])
    expected = [0] * 2 + [200] * 5 + [0] * 3 + [120] * 9 + [0] * 4
    assert np.allclose(means, expected, atol=2)
    with av.open(str(tmp_path / "film.mp4")) as c:
        assert c.metadata["ai_generated"] == LABEL
        assert c.streams.video[0].metadata["timecode"] == "01:00:00:05"
    assert out.gap_frames == 9 and written.files == [(tmp_path / "film.mp4", "mp4")]


def test_frames_out_of_the_cut_order_are_refused(tmp_path):
    cut = Cut((Slot("scene", 1, "a"), Slot("scene", 1, "b")))
    out = Deliverables(DeliverableOptions(mp4=tmp_path / "f.mp4"), cut, 16, W, H, "t")
    with pytest.raises(ValueError, match="out of the cut's order"):
        out.write("b", 0, frames(1, 0)[0])
    out.close(complete=False)


def test_sequences_sheet_and_overlay(tmp_path):
    scenes = {"a": frames(9, 1), "b": frames(5, 2)}
    cut = Cut((Slot("scene", 9, "a"), Slot("gap", 2), Slot("scene", 5, "b")))
    _, written = render_cut(tmp_path, cut, scenes, frames_dir=tmp_path / "png", png_bits=8,
                            contact_sheet=tmp_path / "sheet.png")
    from PIL import Image

    for sid, fs in scenes.items():
        files = sorted((tmp_path / "png" / sid).glob("*.png"))
        assert [p.name for p in files] == [f"{sid}.{i:04d}.png" for i in range(1, len(fs) + 1)]
        assert all(np.array_equal(np.asarray(Image.open(p)), f)
                   for p, f in zip(files, fs, strict=True))
    assert set(written.sequences) == {tmp_path / "png" / "a", tmp_path / "png" / "b"}
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    for row, sid in enumerate(scenes):
        for col, idx in enumerate(thumbnail_indices(len(scenes[sid]))):
            x, y = thumb_origin(row, col, (W, H))
            assert np.array_equal(sheet[y:y + H, x:x + W], scenes[sid][idx])
    # The visible label is opt-in and touches only the bottom-left corner.
    _, _ = render_cut(tmp_path / "l", cut, scenes, frames_dir=tmp_path / "l" / "png", label=True)
    labelled = np.asarray(Image.open(tmp_path / "l" / "png" / "a" / "a.0001.png"))
    changed = np.argwhere((labelled != scenes["a"][0]).any(axis=-1))
    assert len(changed) > 20
    assert changed[:, 0].min() >= H // 2 and changed[:, 1].max() < W


def test_audio_is_muxed_beside_the_untouched_picture(tmp_path):
    movie = Mp4Writer(tmp_path / "v.mp4", 16, W, H, metadata=label_tags("mp4"),
                        start_timecode=timecode(16 * 3600, 16))
    for f in frames(17, 3):
        movie.write(f)
    movie.close()
    mux_audio(tmp_path / "v.mp4", sine_wave(440.0, 17 / 16), 48000, tmp_path / "va.mp4")
    audio = probe_audio(tmp_path / "va.mp4")
    assert (audio["sample_rate"], audio["channels"], audio["codec"]) == (48000, 2, "aac")
    spectrum = np.abs(np.fft.rfft(audio["samples"][0]))
    peak_hz = np.argmax(spectrum) * 48000 / audio["samples"].shape[1]
    assert abs(peak_hz - 440.0) < 2.0
    before, after = probe_video(tmp_path / "v.mp4"), probe_video(tmp_path / "va.mp4")
    assert after["frames"] == 17
    assert all(np.array_equal(a, b) for a, b in zip(before["images"], after["images"], strict=True))
    assert has_label(tmp_path / "va.mp4")
    with pytest.raises(ValueError, match="channels"):
        mux_audio(tmp_path / "v.mp4", np.zeros((3, 10), np.float32), 48000, tmp_path / "x.mp4")
