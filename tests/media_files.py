"""Small media files the conditioning tests make: smooth moving pictures (so that lossy
codecs and resizing behave as on real footage), tones, and broken files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def picture(width: int, height: int, t: float = 0.0, seed: int = 0) -> np.ndarray:
    """A smooth RGB picture (gradients, a moving disc), uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width * (0.3 + 0.4 * ((t * 0.37 + rng.random()) % 1)), height * (0.5 + 0.2 * np.sin(t))
    disc = ((x - cx) ** 2 + (y - cy) ** 2 < (min(width, height) / 4) ** 2).astype(np.float32)
    base = rng.random(3) * 255
    r = base[0] * 0.5 + 120 * x / width + 60 * disc
    g = base[1] * 0.5 + 100 * y / height + 20 * np.sin(t + x / 7)
    b = base[2] * 0.5 + 150 * disc
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def write_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    Image.fromarray(picture(width, height, 0.0, seed)).save(path)
    return path


def write_video(path: Path, frames: int, fps: int, width: int, height: int, seed: int = 0,
                codec: str | None = None) -> Path:
    """A clip of moving pictures: .webm -> VP9, .mp4 -> h264 (yuv420p)."""
    codec = codec or ("libvpx-vp9" if path.suffix == ".webm" else "libx264")
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(picture(width, height, i / fps * 3, seed),
                                               format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_tone(path: Path, seconds: float, frequency: float = 440.0, rate: int = 44100) -> Path:
    """A mono sine tone as FLAC (decoded and resampled to 48 kHz stereo by the farm)."""
    n = round(seconds * rate)
    tone = (0.3 * np.sin(2 * np.pi * frequency * np.arange(n) / rate)).astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream("flac", rate=rate, layout="mono")
        for start in range(0, n, 4096):
            f = av.AudioFrame.from_ndarray(tone[None, start:start + 4096], format="flt",
                                           layout="mono")
            f.sample_rate, f.pts, f.time_base = rate, start, Fraction(1, rate)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_corrupt(path: Path, good: Path) -> Path:
    """`good`'s header with its body cut and scrambled."""
    data = good.read_bytes()
    keep = len(data) // 3
    path.write_bytes(data[:keep] + bytes((b * 7 + 13) % 256 for b in data[keep:keep * 2]))
    return path
