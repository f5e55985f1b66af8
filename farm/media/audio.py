"""Scene audio: decoded, resampled, aligned to the scene's frames, muxed into the movie.

    scene audio file ──PyAV decode + resample──> float32 (2, n) at 48 kHz
                     ──fit──> exactly frames * 48000 / fps samples (cut or padded with
                                silence), so the sound of frame k plays while frame k shows
    film track = the cut's slots in order: each scene's aligned audio, silence for scenes
                 without audio and for gaps ──mux_audio──> AAC beside the picture; slot k
                 spans samples [F_k * 48000 / fps, F_k+1 * 48000 / fps) (floored) of the
                 film, F_k its first frame, so no rate drifts at the cuts
    a slice    `talk.wav#t=25/16,50/16` (a dialogue shot's, farm.spec.dialogue): those
                 seconds of the file, padded with silence past its end; `&gain=0`: silence
                 the same length; a scene with several (a dialogue's per-speaker tracks)
                 plays them summed

Every family accepts audio and the deliverable carries it; the speech-to-video family
(s2v-14b, farm.model.s2v) also listens to it (decoded again at 16 kHz mono for wav2vec2).
Decoding is PyAV's on every worker (DALI's audio decoder is CPU-only anyway).
"""

from __future__ import annotations

import io
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from farm.media.decode import MediaError, read_bytes
from farm.spec.dialogue import split_slice

SAMPLE_RATE = 48000
CHANNELS = 2
# A scene's sound: a location, several played summed, or none.
Sound = str | tuple[str, ...] | None


def decode_audio(location: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The file's first audio stream as float32 stereo (2, n) at `sample_rate`; of a
    slice (`file#t=a,b`), samples [a * rate, b * rate) of it."""
    base, span = split_slice(location)
    samples = _decode(base, sample_rate)
    return samples if span is None else cut(samples, span, sample_rate)


def cut(samples: np.ndarray, span: tuple[Fraction, Fraction, bool],
        sample_rate: int) -> np.ndarray:
    """Samples [floor(a * rate), floor(b * rate)) of `samples`, silence past their end
    (the frame rule may reach less than a frame past a turn's end); `silent`: all silence."""
    a, b, silent = span
    start, stop = math.floor(a * sample_rate), math.floor(b * sample_rate)
    return fit(samples[:, start:start if silent else stop], stop - start)


def _decode(location: str, sample_rate: int) -> np.ndarray:
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


def fit(samples: np.ndarray, n: int) -> np.ndarray:
    """Exactly `n` samples: cut, or padded with silence."""
    out = np.zeros((samples.shape[0], n), np.float32)
    k = min(n, samples.shape[1])
    out[:, :k] = samples[:, :k]
    return out


def scene_sound(scene: Any) -> Sound:
    """What the deliverable plays during a resolved scene: a dialogue shot's slices of its
    tracks (summed), else the scene's audio."""
    return scene.dialogue.sound if scene.dialogue is not None else scene.inputs.audio


def film_track(slots: list[tuple[int, Sound]], fps: int,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """(frames, audio location(s) or None) per slot of the cut, in order -> the film's
    track, or None when no slot has audio. Slot k has the samples of film frames
    [F_k, F_k+1): exact at every cut whatever the rate."""
    if all(not loc for _, loc in slots):
        return None
    files: dict[str, np.ndarray] = {}  # a dialogue's track is decoded once for its shots

    def play(location: str) -> np.ndarray:
        base, span = split_slice(location)
        if base not in files:
            files[base] = decode_audio(base, sample_rate)
        return files[base] if span is None else cut(files[base], span, sample_rate)

    parts, first = [], 0
    for frames, loc in slots:
        n = samples_for(first + frames, fps, sample_rate) - samples_for(first, fps, sample_rate)
        locations = (loc,) if isinstance(loc, str) else loc or ()
        part = np.zeros((CHANNELS, n), np.float32)
        for location in locations:
            part += fit(play(location), n)
        parts.append(part)
        first += frames
    return np.concatenate(parts, axis=1)


def add_film_audio(movie: str | Path, slots: list[tuple[int, Sound]], fps: int) -> bool:
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
