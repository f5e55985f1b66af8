"""The example media under examples/media/ (docs/media.md and docs/s2v.md):
small, synthetic and made deterministically by this script, so anyone can regenerate
them (numpy, Pillow and PyAV, all installed with reelfarm):

    python tests/docs/example_media.py [DIR]      # default: examples/media

Pictures are 64x64 PNGs, videos 64x64 h264 at 16 fps (one encoder thread, no
timestamps in the metadata), audio mono FLAC; well under 200 KB in all.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SIZE = 64
FPS = 16


def _grid() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return x, y


def still(colour: tuple[int, int, int], shape: str) -> np.ndarray:
    """A plain-coloured subject (disc or square) on a soft vertical gradient."""
    x, y = _grid()
    background = np.stack([40 + 80 * y / SIZE] * 3, -1)
    if shape == "disc":
        inside = (x - 32) ** 2 + (y - 30) ** 2 < 14 ** 2
    else:
        inside = (abs(x - 32) < 12) & (abs(y - 34) < 16)
    picture = np.where(inside[..., None], np.array(colour, np.float32), background)
    return picture.astype(np.uint8)


def mask_right_half() -> np.ndarray:
    """White (generate) on the right half, black (keep) on the left."""
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[:, SIZE // 2:] = 255
    return m


def depth_frame(i: int) -> np.ndarray:
    """A depth-like picture: a near disc (bright) drifting right over a far floor."""
    x, y = _grid()
    floor = 30 + 100 * y / SIZE
    cx = 16 + 32 * i / 80
    disc = (x - cx) ** 2 + (y - 28) ** 2 < 10 ** 2
    grey = np.where(disc, 230, floor).astype(np.uint8)
    return np.repeat(grey[..., None], 3, -1)


def pose_frame(i: int) -> np.ndarray:
    """A stick figure on black whose arms swing (what a pose video looks like)."""
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    x, y = _grid()

    def line(x0, y0, x1, y1, colour):
        t = np.clip(((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0))
                    / max((x1 - x0) ** 2 + (y1 - y0) ** 2, 1e-6), 0, 1)
        near = (x - x0 - t * (x1 - x0)) ** 2 + (y - y0 - t * (y1 - y0)) ** 2 < 2.0
        img[near] = colour

    swing = 10 * np.sin(2 * np.pi * i / 32)
    line(32, 14, 32, 38, (255, 0, 0))                   # spine
    line(32, 20, 18, 28 + swing, (0, 255, 0))           # arms
    line(32, 20, 46, 28 - swing, (0, 0, 255))
    line(32, 38, 24, 56, (255, 255, 0))                 # legs
    line(32, 38, 40, 56, (0, 255, 255))
    img[(x - 32) ** 2 + (y - 9) ** 2 < 5 ** 2] = (255, 255, 255)     # head
    return img


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, optimize=True)


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"fflags": "+bitexact"}) as c:
        s = c.add_stream("libx264", rate=Fraction(FPS))
        s.width, s.height, s.pix_fmt = SIZE, SIZE, "yuv420p"
        s.options = {"threads": "1", "crf": "28", "preset": "medium"}
        s.codec_context.flags |= av.codec.context.Flags.bitexact
        for pixels in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def write_flac(path: Path, seconds: float, notes: list[float], rate: int = 8000) -> None:
    """Mono FLAC: `notes` (Hz) played one after another, evenly over `seconds`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    which = np.minimum((t / seconds * len(notes)).astype(int), len(notes) - 1)
    freq = np.asarray(notes)[which]
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * (t * len(notes) / seconds))   # a soft attack per note
    tone = (0.3 * envelope * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    with av.open(str(path), "w", options={"fflags": "+bitexact"}) as c:
        s = c.add_stream("flac", rate=rate, layout="mono")
        s.codec_context.flags |= av.codec.context.Flags.bitexact
        for start in range(0, n, 4096):
            chunk = tone[None, start:start + 4096]
            f = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            f.sample_rate, f.pts, f.time_base = rate, start, Fraction(1, rate)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def make(root: Path) -> list[Path]:
    """Write every example file under `root`; returns their paths."""
    files = {
        "refs/mira.png": lambda p: write_png(p, still((230, 200, 40), "square")),
        "refs/lamp.png": lambda p: write_png(p, still((250, 240, 200), "disc")),
        "stills/s020.png": lambda p: write_png(p, still((60, 90, 160), "square")),
        "stills/singer.png": lambda p: write_png(p, still((200, 60, 80), "disc")),
        "masks/right-half.png": lambda p: write_png(p, mask_right_half()),
        # 81 frames at 16 fps: the VACE scene s010's length.
        "depth/s010.mp4": lambda p: write_video(p, [depth_frame(i) for i in range(81)]),
        # 157 frames at 16 fps: the speech-to-video scene's length.
        "pose/s010.mp4": lambda p: write_video(p, [pose_frame(i) for i in range(157)]),
        "vo/s010.flac": lambda p: write_flac(p, 81 / FPS, [330.0, 392.0]),
        "vo/song.flac": lambda p: write_flac(p, 157 / FPS, [262.0, 294.0, 330.0, 349.0,
                                                            392.0, 440.0, 494.0, 523.0]),
    }
    written = []
    for name, write in files.items():
        path = root / name
        write(path)
        written.append(path)
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples" / "media"
    for path in make(out):
        print(f"{path.stat().st_size:7d}  {path}")
