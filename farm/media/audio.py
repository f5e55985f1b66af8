"""Scene audio: decoded, resampled, aligned to the scene's frames, muxed into the movie.

    scene audio file ──PyAV decode + resample──> float32 (2, n) at 48 kHz
                     ──align──> exactly frames * 48000 / fps samples (cut or padded with
                                silence), so the sound of frame k plays while frame k shows
    film track = the cut's slots in order: each scene's aligned audio, silence for scenes
                 without audio and for gaps ──mux_audio──> AAC beside the picture

Every family accepts audio and the deliverable carries it; the speech-to-video family
(s2v-14b, farm.model.s2v) also listens to it (decoded again at 16 kHz mono for wav2vec2).
Decoding is PyAV's on every worker (DALI's audio decoder is CPU-only anyway).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from farm.media.decode import MediaError, read_bytes

SAMPLE_RATE = 48000
CHANNELS = 2


def decode_audio(location: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The file's first audio stream as float32 stereo (2, n) at `sample_rate`."""
    import av

    data = read_bytes(location)
    try:
        with av.open(io.BytesIO(data)) as c:
            if not c.streams.audio:
                raise MediaError(location, "has no audio stream")
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=sample_rate)
            chunks = []
            for frame in c.decode(audio=0):
                chunks += [f.to_ndarray() for f in resampler.resample(frame)]
            chunks += [f.to_ndarray() for f in resampler.resample(None)]
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001 - PyAV raises many kinds
        raise MediaError(location, f"cannot decode audio: {type(exc).__name__}: {exc}") from None
    if not chunks:
        raise MediaError(location, "has no audio samples")
    return np.concatenate(chunks, axis=1).astype(np.float32)


def samples_for(frames: int, fps: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Samples that play during `frames` frames (exact for 48 kHz and integer fps that
    divide it: 16, 24, 30, ...; otherwise rounded down)."""
    return frames * sample_rate // fps


def align(samples: np.ndarray, frames: int, fps: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Exactly the samples of `frames` frames: cut, or padded with silence."""
    n = samples_for(frames, fps, sample_rate)
    out = np.zeros((samples.shape[0], n), np.float32)
    k = min(n, samples.shape[1])
    out[:, :k] = samples[:, :k]
    return out


def film_track(slots: list[tuple[int, str | None]], fps: int,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """(frames, audio location or None) per slot of the cut, in order -> the film's
    track, or None when no slot has audio."""
    if all(loc is None for _, loc in slots):
        return None
    parts = []
    for frames, loc in slots:
        sound = decode_audio(loc, sample_rate) if loc else np.zeros((CHANNELS, 0), np.float32)
        parts.append(align(sound, frames, fps, sample_rate))
    return np.concatenate(parts, axis=1)


def add_film_audio(movie: str | Path, slots: list[tuple[int, str | None]], fps: int) -> bool:
    """Mux the film's track (film_track of `slots`) into the finished `movie`; False, and
    the movie untouched, when no slot has audio."""
    track = film_track(slots, fps)
    if track is None:
        return False
    add_track(movie, track)
    return True


def add_track(movie: str | Path, track: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Mux `track` into the finished `movie` in place (picture packets copied)."""
    from farm.media.movie import mux_audio

    movie = Path(movie)
    tmp = movie.with_name(f".{movie.name}.audio.mp4")
    try:
        mux_audio(movie, track, sample_rate, tmp)
        os.replace(tmp, movie)
    finally:
        tmp.unlink(missing_ok=True)
