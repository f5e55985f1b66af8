"""The film's movie deliverable: the start timecode, and muxing an audio track into a
finished movie (the picture itself is farm.media.writers.Mp4Writer, with a start
timecode and provenance tags).

Audio: `mux_audio` copies the video packets untouched (no re-encode, so the picture stays
bit-identical) and encodes the scenes' audio (farm.media.audio) as AAC next to them.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def timecode(frame: int, fps: int) -> str:
    """Non-drop-frame SMPTE timecode HH:MM:SS:FF of a frame number at an integer fps."""
    seconds, ff = divmod(frame, fps)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"


def sine_wave(frequency: float, seconds: float, sample_rate: int = 48000,
              channels: int = 2, amplitude: float = 0.25) -> np.ndarray:
    """A test tone, float32 (channels, samples): what the audio path is tested with."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    tone = (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return np.repeat(tone[None, :], channels, axis=0)


def mux_audio(video: str | Path, samples: np.ndarray, sample_rate: int, out: str | Path,
              *, bitrate: int = 192_000) -> Path:
    """`video`'s picture (packets copied) plus `samples` (float32, channels x samples) as
    AAC, into `out`. Container tags (label, timecode) are carried over."""
    if samples.ndim != 2 or samples.shape[0] not in (1, 2):
        raise ValueError(f"samples must be (1 or 2 channels, n), got shape {samples.shape}")
    out = Path(out)
    with av.open(str(video)) as src, av.open(str(out), "w", format="mp4",
                                              options={"movflags": "use_metadata_tags"}) as dst:
        for key, value in src.metadata.items():
            if key not in ("major_brand", "minor_version", "compatible_brands", "encoder"):
                dst.metadata[key] = value
        v_in = src.streams.video[0]
        v_out = dst.add_stream_from_template(v_in)
        layout = "stereo" if samples.shape[0] == 2 else "mono"
        a_out = dst.add_stream("aac", rate=sample_rate, layout=layout)
        a_out.bit_rate = bitrate
        for packet in src.demux(v_in):
            if packet.dts is not None:
                packet.stream = v_out
                dst.mux(packet)
        _encode_audio(dst, a_out, np.ascontiguousarray(samples, dtype=np.float32), sample_rate,
                      layout)
    return out


def _encode_audio(dst, stream, samples: np.ndarray, sample_rate: int, layout: str) -> None:
    # AAC takes 1024-sample frames; planar float is what PyAV's aac encoder wants.
    block = 1024
    for start in range(0, samples.shape[1], block):
        chunk = samples[:, start:start + block]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                           layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            dst.mux(packet)
    for packet in stream.encode():
        dst.mux(packet)


def probe_audio(path: str | Path) -> dict[str, object]:
    """Decode a file's audio back: sample rate, channels and samples (channels x n)."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        chunks = [f.to_ndarray() for f in c.decode(stream)]
        return {"sample_rate": stream.rate, "channels": stream.channels,
                "codec": stream.codec_context.name, "samples": np.concatenate(chunks, axis=1)}
