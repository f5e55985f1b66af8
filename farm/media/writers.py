"""Deliverable writers: an h264 mp4 built frame by frame, and lossless PNG sequences.

Frames are uint8 RGB arrays (H, W, 3). Writers accept frames as they stream in, so a
film's mp4 and image sequence grow while later scenes are still rendering.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


class Mp4Writer:
    """h264, yuv420p, constant frame rate, written frame by frame as frames stream in;
    `crf` 0 is lossless-luma quality, 18 visually lossless.

    `metadata` becomes container tags (movflags=use_metadata_tags keeps keys mp4 has no
    atom for, such as the AI-generated label); `start_timecode` makes the muxer add a
    tmcd track, which editors read as the clip's start timecode."""

    def __init__(self, path: str | Path, fps: int, width: int, height: int, *, crf: int = 18,
                 preset: str = "medium", metadata: dict[str, str] | None = None,
                 start_timecode: str | None = None):
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs even sizes, got {width}x{height}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w", format="mp4",
                                  options={"movflags": "use_metadata_tags"})
        for key, value in (metadata or {}).items():
            self._container.metadata[key] = value
        if start_timecode is not None:
            self._container.metadata["timecode"] = start_timecode
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps))
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": preset}
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def png_path(root: str | Path, scene_id: str, index: int) -> Path:
    """`<root>/<scene id>/<scene id>.<frame:04d>.png`, frame numbers starting at 1."""
    return Path(root) / scene_id / f"{scene_id}.{index + 1:04d}.png"


def write_png(root: str | Path, scene_id: str, index: int, frame: np.ndarray) -> Path:
    path = png_path(root, scene_id, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(path, format="PNG", compress_level=1)
    return path


def probe_video(path: str | Path) -> dict[str, object]:
    """Decode a video back: frame count, fps, size and codec (what tests check)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return {"frames": len(frames), "fps": stream.average_rate, "width": stream.width,
                "height": stream.height, "codec": stream.codec_context.name,
                "pix_fmt": stream.codec_context.pix_fmt, "images": frames}
