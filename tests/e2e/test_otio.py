"""OpenTimelineIO round trip through the CLI on the tiny model: a timeline with 3 clips and
a gap is rendered, exported, reloaded with OTIO and every range checked; the deliverables
verify, and stop verifying once modified."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest
from PIL import Image

from farm.cli import main
from farm.media.writers import probe_video
from farm.spec.timeline import load_timeline

pytestmark = pytest.mark.model
RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
BIN = Path(sys.executable).parent


def make_timeline(path: Path) -> otio.schema.Timeline:
    tl = otio.schema.Timeline(name="Round trip", global_start_time=RT(16 * 3600, 16))
    tl.metadata["reelfarm"] = {"width": 64, "height": 64, "steps": 2}
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    for name, start, frames, seed in (("sh010", 100, 5, 1), (None, 0, 3, 0), ("sh020", 0, 9, 2),
                                      ("sh030", 40, 5, 3)):
        span = TR(RT(start, 16), RT(frames, 16))
        if name is None:
            track.append(otio.schema.Gap(source_range=span))
            continue
        clip = otio.schema.Clip(name=name, source_range=span)
        clip.metadata["reelfarm"] = {"prompt": f"prompt {name}", "seed": seed}
        clip.markers.append(otio.schema.Marker(name=f"note {name}",
                                               marked_range=TR(RT(start, 16), RT(1, 16))))
        track.append(clip)
    otio.adapters.write_to_file(tl, str(path))
    return tl


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("otio")
    source = make_timeline(root / "cut.otio")
    args = ["render", str(root / "cut.otio"), "-o", str(root / "out" / "film.mp4"),
            "--otio-out", str(root / "out" / "film.otio"), "--exr-dir", str(root / "out" / "exr"),
            "--contact-sheet", str(root / "out" / "sheet.png")]
    assert main(args) == 0
    return root, source


def test_exported_timeline_keeps_every_range_and_references_the_rendered_frames(rendered):
    root, source = rendered
    out = root / "out" / "film.otio"
    back = otio.adapters.read_from_file(str(out))
    old, new = source.tracks[0], back.tracks[0]
    assert back.global_start_time == source.global_start_time and len(new) == len(old) == 4
    for before, after in zip(old, new, strict=True):
        assert type(after) is type(before) and after.name == before.name
        assert after.source_range == before.source_range
        assert after.range_in_parent() == before.range_in_parent()
    for clip in back.find_clips():
        ref, n = clip.media_reference, int(clip.source_range.duration.value)
        assert isinstance(ref, otio.schema.ImageSequenceReference)
        assert ref.number_of_images_in_sequence() == n and ref.rate == 16
        assert ref.frame_for_time(clip.source_range.start_time) == 1
        assert ref.frame_for_time(clip.source_range.end_time_inclusive()) == n
        files = [out.parent / ref.target_url_for_image_number(i) for i in range(n)]
        assert [f.name for f in files] == [f"{clip.name}.{i:04d}.png" for i in range(1, n + 1)]
        assert all(f.is_file() for f in files)
        assert list(clip.markers)[0].name == f"note {clip.name}"
        assert clip.metadata["reelfarm_render"]["frames"] == n
    assert back.metadata["reelfarm_render"]["label"] == "AI-generated"
    # The export is a valid request too: it imports back as the same film.
    again = load_timeline(out)
    assert [(s.id, s.frames, s.seed) for s in again.board.scenes] == [
        ("sh010", 5, 1), ("sh020", 9, 2), ("sh030", 5, 3)]
    # OTIO's own command-line tools read it.
    done = subprocess.run([str(BIN / "otiotool"), "-i", str(out), "--list-clips"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and all(n in done.stdout for n in ("sh010", "sh020", "sh030"))


def test_deliverables_hold_the_cut_with_the_gap_in_black(rendered):
    root, _ = rendered
    info = probe_video(root / "out" / "film.mp4")
    assert (info["frames"], info["fps"], info["width"], info["height"]) == (
        22, Fraction(16), 64, 64)
    gap = info["images"][5:8]
    assert all(int(im.max()) <= 2 for im in gap)
    assert all(float(im.mean()) > 5 for im in info["images"][:5] + info["images"][8:])
    with av.open(str(root / "out" / "film.mp4")) as c:
        assert c.streams.video[0].metadata["timecode"] == "01:00:00:00"
    # The PNG and EXR sequences hold the same rendered frames.
    from farm.media.stills import linear_to_srgb8, read_exr

    for sid, n in (("sh010", 5), ("sh020", 9), ("sh030", 5)):
        for i in (0, n - 1):
            png = np.asarray(Image.open(
                root / "out" / "film_frames" / sid / f"{sid}.{i + 1:04d}.png"))
            exr, _ = read_exr(root / "out" / "exr" / sid / f"{sid}.{i + 1:04d}.exr")
            assert np.array_equal(linear_to_srgb8(exr), png)


def test_verify_passes_then_catches_a_modified_file(rendered, capsys):
    root, _ = rendered
    out = root / "out"
    paths = [out / "film.mp4", out / "film.otio", out / "sheet.png", out / "film_frames" / "sh020",
             out / "exr" / "sh030", out / "film_frames" / "sh010" / "sh010.0003.png"]
    assert main(["verify", *map(str, paths)]) == 0
    assert "matches" in capsys.readouterr().out
    frame = out / "film_frames" / "sh020" / "sh020.0004.png"
    pixels = np.asarray(Image.open(frame)).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(frame)
    assert main(["verify", str(frame)]) == 1
    assert "MODIFIED" in capsys.readouterr().err
    assert main(["verify", str(out / "film_frames" / "sh020")]) == 1
    # A signed file verifies on its own (its credentials travel with it); the timeline,
    # which carries no embedded credentials, cannot be verified without its manifest.
    (out / "sheet.png.provenance.json").unlink()
    assert main(["verify", str(out / "sheet.png")]) == 0
    assert "content credentials valid" in capsys.readouterr().out
    (out / "film.otio.provenance.json").unlink()
    assert main(["verify", str(out / "film.otio")]) == 2
    assert "no provenance manifest" in capsys.readouterr().err


def test_validate_accepts_timelines_and_names_bad_clips(tmp_path, capsys):
    make_timeline(tmp_path / "cut.otio")
    assert main(["validate", str(tmp_path / "cut.otio"), "--width", "128"]) == 0
    assert "3 scenes, 19 frames + 3 gap frames, 128x64 at 16 fps" in capsys.readouterr().out
    tl = otio.adapters.read_from_file(str(tmp_path / "cut.otio"))
    tl.tracks[0][2].source_range = TR(RT(0, 16), RT(10, 16))
    del tl.tracks[0][3].metadata["reelfarm"]["prompt"]
    otio.adapters.write_to_file(tl, str(tmp_path / "bad.otio"))
    assert main(["validate", str(tmp_path / "bad.otio")]) == 2
    err = capsys.readouterr().err
    assert ("tracks[0][2].source_range.duration: clip 'sh020' is 10 frames at 16 fps, "
            "not 4k+1") in err
    assert "nearest valid durations: 9 frames (0.5625 s) or 13 frames (0.8125 s)" in err
    assert "tracks[0][3].metadata.reelfarm.prompt: clip 'sh030' has no prompt" in err
    # The model's rules (checked once the timeline itself is sound) name the flag or field.
    assert main(["validate", str(tmp_path / "cut.otio"), "--width", "60"]) == 2
    assert "--width: 60 is not a multiple of 16" in capsys.readouterr().err
    tl.tracks[0][2].source_range = TR(RT(0, 16), RT(9, 16))
    tl.tracks[0][3].metadata["reelfarm"]["prompt"] = "p"
    tl.tracks[0][3].metadata["reelfarm"]["guidance"] = {"mid": 2.0}
    otio.adapters.write_to_file(tl, str(tmp_path / "bad.otio"))
    assert main(["validate", str(tmp_path / "bad.otio")]) == 2
    assert ("tracks[0][3].metadata.reelfarm.guidance: unknown expert(s) mid"
            in capsys.readouterr().err)


def test_storyboard_render_exports_a_timeline_that_renders_the_same_film(tmp_path):
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "t.otio"
    assert main(["render", str(root / "examples" / "trailer.yaml"), "-o", str(tmp_path / "t.mp4"),
                 "--steps", "2", "--otio-out", str(out), "--png-depth", "16"]) == 0
    tl = otio.adapters.read_from_file(str(out))
    clips = list(tl.find_clips())
    imported = load_timeline(out)
    assert [c.name for c in clips] == [s.id for s in imported.board.scenes]
    assert (sum(int(c.source_range.duration.value) for c in clips)
            == probe_video(tmp_path / "t.mp4")["frames"])
    assert imported.board.steps == 2
    first = tmp_path / "t_frames" / clips[0].name / f"{clips[0].name}.0001.png"
    with av.open(str(first)) as c:
        assert next(c.decode(video=0)).format.name.startswith("rgb48")
