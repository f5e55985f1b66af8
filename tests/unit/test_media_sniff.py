"""What an upload is, decided by decoding it: the accepted formats pass with their kind and
size; bytes FFmpeg's probe or Pillow would wave through (found by tests/serving/api's
fuzzing) are refused with a reason, before any film uses them."""

from __future__ import annotations

import hashlib

import pytest

from farm.media.library import MediaRejected, sniff
from tests.media_files import write_image, write_tone, write_video

# A PNG's 8-byte signature, then one cut before its IDAT chunk's CRC (Pillow decodes it).
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CUT_PNG = (PNG_SIGNATURE + b"\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00"
           b"\x00\x90wS\xde\x00\x00\x00\x05IDAT\x08\xd7b\x00\x01")


def info(data: bytes):
    return sniff(data, hashlib.sha256(data).hexdigest())


def test_accepted_formats_keep_their_kind_and_size(tmp_path):
    image = info(write_image(tmp_path / "a.png", 24, 40, seed=1).read_bytes())
    video = info(write_video(tmp_path / "b.webm", 9, 16, 24, 24, seed=2).read_bytes())
    tone = info(write_tone(tmp_path / "c.flac", 0.5).read_bytes())
    assert (image.kind, image.mime_type, image.width, image.height) == ("image", "image/png",
                                                                        24, 40)
    assert (video.kind, video.mime_type, video.width, video.height) == ("video", "video/webm",
                                                                        24, 24)
    assert (tone.kind, tone.mime_type) == ("audio", "audio/flac") and tone.duration_s == 0.5


@pytest.mark.parametrize("data, words", [
    (PNG_SIGNATURE, "not an image, a video"),     # FFmpeg: a one-frame 0x0 "video"
    (CUT_PNG, "incomplete checksum"),             # Pillow: a 1x1 black image
    (b"\x04" + b"\0" * 5, "not an image, a video"),  # FFmpeg: 0 Hz, 0-channel EA audio
    (b"\t" + b"\0" * 23, "not an image, a video"),   # FFmpeg: a CD+G karaoke frame
])
def test_bytes_that_only_probe_are_refused(data, words):
    with pytest.raises(MediaRejected, match=words):
        info(data)
