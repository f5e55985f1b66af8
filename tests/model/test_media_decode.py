"""Media decode: the PyAV/Pillow backend, the DALI backend (CPU here: images, VP8, VP9) in
its own environment (.venv-dali, run as a subprocess), and their agreement:

    at the file's own size      images identical; video within 1/255 (rounding of the
                                same BT.601 conversion)
    resized (Lanczos-3 both)    mean difference <= 0.3/255 and max <= 3/255 on smooth
                                pictures (measured: 0.19 and 2); Pillow's and DALI's
                                kernels differ in support and rounding, nothing else (on
                                white noise, the worst case, max 17/255, mean 0.5/255)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from farm.media.audio import decode_audio, film_track, fit, samples_for
from farm.media.decode import MediaError, decode_image, decode_video, frame_indices, probe_video
from tests.media_files import picture, write_corrupt, write_image, write_tone, write_video

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parents[2]
DALI_PYTHON = ROOT / ".venv-dali" / "bin" / "python"


def dali(tmp_path: Path, requests: list[dict]) -> list[np.ndarray]:
    """Decode with farm/media/dali_decode.py in .venv-dali (CPU)."""
    if not DALI_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(".venv-dali is missing in CI (.ci/run runs .ci/dali-env)")
        pytest.skip(".venv-dali is absent: run .ci/dali-env (make dali)")
    for i, r in enumerate(requests):
        r["out"] = str(tmp_path / f"dali{i}.npy")
    (tmp_path / "req.json").write_text(json.dumps({"device": "cpu", "requests": requests}))
    res = subprocess.run([str(DALI_PYTHON), str(ROOT / "farm/media/dali_decode.py"),
                          str(tmp_path / "req.json")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return [np.load(r["out"]) for r in requests]


def diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


def test_dali_and_pyav_give_the_same_frames(tmp_path):
    vp9 = write_video(tmp_path / "a.webm", 12, 24, 64, 48, seed=1)
    vp8 = write_video(tmp_path / "b.webm", 10, 20, 64, 48, seed=2, codec="libvpx")
    png = write_image(tmp_path / "c.png", 64, 48, seed=3)
    jpg = tmp_path / "d.jpg"
    from PIL import Image

    Image.fromarray(picture(64, 48, 1.0, seed=4)).save(jpg, quality=90)
    native = {"size": None}
    small = {"size": [40, 32]}
    ours = [decode_video(str(vp9), 24, 12), decode_video(str(vp8), 20, 10, (40, 32)),
            decode_image(str(png)), decode_image(str(png), (40, 32)), decode_image(str(jpg))]
    theirs = dali(tmp_path, [
        {"kind": "video", "path": str(vp9), "indices": list(range(12)), **native},
        {"kind": "video", "path": str(vp8), "indices": list(range(10)), **small},
        {"kind": "image", "path": str(png), **native},
        {"kind": "image", "path": str(png), **small},
        {"kind": "image", "path": str(jpg), **native}])
    assert diff(ours[0], theirs[0]).max() <= 1  # same colour conversion
    assert diff(ours[2], theirs[2]).max() == 0  # lossless image
    for resized in (diff(ours[1], theirs[1]), diff(ours[3], theirs[3])):
        assert resized.mean() <= 0.3 and resized.max() <= 3
    assert diff(ours[4], theirs[4]).max() <= 2  # JPEG: libjpeg-turbo vs nvJPEG's CPU path


def test_video_is_resampled_to_the_scene_frame_rate(tmp_path):
    src = write_video(tmp_path / "v.webm", 24, 24, 32, 32)
    info = probe_video(src.read_bytes(), str(src))
    assert (info.codec, info.frames, float(info.fps)) == ("vp9", 24, 24.0)
    # at 16 fps, output frame i shows the source frame that started at or before i / 16 s
    assert frame_indices(info, 16, 8) == [0, 1, 3, 4, 6, 7, 9, 10]
    all_frames = decode_video(str(src), 24, 24)
    at16 = decode_video(str(src), 16, 8, start=4)
    assert np.array_equal(at16, all_frames[frame_indices(info, 16, 8, start=4)])


def test_bad_media_names_the_file_and_the_problem(tmp_path):
    good = write_video(tmp_path / "good.mp4", 8, 16, 32, 32)
    bad = write_corrupt(tmp_path / "bad.mp4", good)
    with pytest.raises(MediaError, match="bad.mp4"):
        decode_video(str(bad), 16, 8)
    with pytest.raises(MediaError, match=r"good.mp4: is 0.500 s .* needs 1.000 s"):
        decode_video(str(good), 16, 16)
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(MediaError, match="notes.png: cannot decode image"):
        decode_image(str(tmp_path / "notes.png"))
    with pytest.raises(MediaError, match="cannot read"):
        decode_image("file:///no/such/file.png")


def test_urls_are_read_through_fsspec(tmp_path):
    src = write_image(tmp_path / "i.png", 16, 16)
    assert np.array_equal(decode_image(src.as_uri()), decode_image(str(src)))
    import fsspec

    with fsspec.open("memory://refs/i.png", "wb") as f:
        f.write(src.read_bytes())
    assert np.array_equal(decode_image("memory://refs/i.png", (8, 8)),
                          decode_image(str(src), (8, 8)))


def test_audio_is_resampled_and_aligned_to_frames(tmp_path):
    tone = write_tone(tmp_path / "t.flac", 1.3, rate=44100)
    samples = decode_audio(str(tone))
    assert samples.shape[0] == 2 and abs(samples.shape[1] - 1.3 * 48000) <= 64
    spectrum = np.abs(np.fft.rfft(samples[0]))
    assert abs(np.argmax(spectrum) * 48000 / samples.shape[1] - 440) < 2
    assert samples_for(17, 16) == 51000
    assert fit(samples, samples_for(17, 16)).shape == (2, 51000)  # cut to 17 frames at 16 fps
    assert fit(samples, samples_for(81, 16))[:, samples.shape[1]:].max() == 0  # padded with silence
    track = film_track([(17, str(tone)), (8, None), (9, str(tone))], 16)
    assert track.shape == (2, 34 * 3000)
    assert np.abs(track[:, 51000:75000]).max() == 0 and np.abs(track[:, 75000:]).max() > 0.2
    assert film_track([(5, None)], 16) is None
    with pytest.raises(MediaError, match="no audio stream"):
        decode_audio(str(write_video(tmp_path / "silent.mp4", 4, 16, 16, 16)))


def test_dali_module_stands_alone():
    """dali_decode.py runs where the farm is not installed: numpy and DALI only."""
    src = (ROOT / "farm/media/dali_decode.py").read_text()
    imports = [line.split()[1] for line in src.splitlines()
               if line.startswith(("import ", "from "))]
    assert set(imports) <= {"__future__", "json", "sys", "numpy"}
