"""Delivery conform: rendered frames to the edit's frame rate and size, with ffmpeg's own
filters through PyAV (one `av.filter.Graph` per scene; no resampling written here).

    rendered frames of one scene (fps_in, render size, rgb24)
      │ buffer            pts = frame index, time base 1/fps_in, duration 1
      │ tpad              the last frame held 4 frames longer: the blend and the motion
      │                   interpolator need a frame after it; a held frame changes nothing
      │                   inside [0, N / fps_in), the only span delivered
      │ fps / framerate / minterpolate      drop | blend | interpolate, to fps_out
      │ trim              end_frame = floor(N * fps_out / fps_in)   (farm.spec.delivery)
      │ scale [+ pad | crop]                 flags = `scale:` (lanczos, ...), then the fit
      │ format rgb24
      └ buffersink ──> delivered frames, in order, as they come out (streamed)

Rate conversion runs at the render size (motion is estimated on the rendered pixels, and a
4K interpolation would cost 10x more), then the picture is scaled once. `drop` uses
`fps` with round=up: delivered frame k is the rendered frame on screen at k / fps_out
(farm.media.decode's rule for inputs). Scene detection is off in `framerate` and
`minterpolate`: a graph only ever holds one shot (scenes are conformed one by one).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from farm.media import stills
from farm.media.contact import burn_label
from farm.media.movie import timecode
from farm.media.provenance import label_tags
from farm.media.writers import Mp4Writer
from farm.spec.delivery import Delivery, fit_geometry

# Frames of the last rendered one appended before rate conversion (see the diagram).
HOLD_FRAMES = 4
# What each `fps_method` asks ffmpeg for (fps_out is appended).
_METHODS = {
    "drop": ("fps", "round=up"),
    "blend": ("framerate", "scene=100"),
    "interpolate": ("minterpolate", "mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=none"),
}


def filter_chain(d: Delivery, frames_in: int) -> list[tuple[str, str]]:
    """The filters (name, arguments) between the buffer and the sink, for a clip of
    `frames_in` rendered frames; also what provenance records."""
    chain: list[tuple[str, str]] = []
    if d.retimed:
        name, extra = _METHODS[d.fps_method]
        chain.append(("tpad", f"stop={HOLD_FRAMES}:stop_mode=clone"))
        if d.fps_method != "drop":  # they take YUV only: 4:4:4, so no chroma is lost
            chain.append(("format", "pix_fmts=yuv444p"))
        chain += [(name, f"fps={d.fps}:{extra}"),
                  ("trim", f"end_frame={d.frames(frames_in)}")]
    if d.resized:
        w, h, x, y = fit_geometry(d)
        chain.append(("scale", f"w={w}:h={h}:flags={d.scale}"))
        if d.fit == "pad":
            chain.append(("pad", f"w={d.width}:h={d.height}:x={x}:y={y}:color=black"))
        elif d.fit == "crop":
            chain.append(("crop", f"w={d.width}:h={d.height}:x={x}:y={y}"))
    return chain + [("format", "pix_fmts=rgb24")]


def describe(d: Delivery) -> str:
    """The filter graph of a clip, as ffmpeg writes it (N: the clip's frame count)."""
    return ",".join(f"{name}={args}" for name, args in filter_chain(d, 0)).replace(
        "end_frame=0", f"end_frame=floor(N*{d.fps}/{d.source_fps})")


class ClipConform:
    """One scene's frames in (render rate and size), delivered frames out, streamed."""

    def __init__(self, d: Delivery, frames_in: int):
        self.delivery = d
        self.expected = d.frames(frames_in)
        self.pushed = self.produced = 0
        # A clip shorter than one delivered frame (1 frame at 30 fps -> 24) delivers none.
        self._graph = _graph(d, frames_in) if self.expected else None

    def push(self, frame: np.ndarray) -> list[np.ndarray]:
        if self._graph is None:
            self.pushed += 1
            return []
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts, vf.time_base, vf.duration = self.pushed, Fraction(1, self.delivery.source_fps), 1
        self.pushed += 1
        self._graph.push(vf)
        return self._pull()

    def finish(self) -> list[np.ndarray]:
        """The frames still in the graph; the clip then has exactly `expected` frames."""
        out = []
        if self._graph is not None:
            self._graph.push(None)
            out = self._pull()
        if self.produced != self.expected:
            raise RuntimeError(f"the conform made {self.produced} frames of a clip of "
                               f"{self.pushed}, expected {self.expected}")
        return out

    def _pull(self) -> list[np.ndarray]:
        out = []
        while True:
            try:
                frame = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            out.append(frame.to_ndarray(format="rgb24"))
        self.produced += len(out)
        return out


def _graph(d: Delivery, frames_in: int) -> av.filter.Graph:
    graph = av.filter.Graph()
    fps = d.source_fps
    nodes = [graph.add("buffer", f"video_size={d.source_width}x{d.source_height}:"
                                 f"pix_fmt=rgb24:time_base=1/{fps}:frame_rate={fps}/1:"
                                 "pixel_aspect=1/1")]
    nodes += [graph.add(name, args) for name, args in filter_chain(d, frames_in)]
    nodes.append(graph.add("buffersink"))
    for a, b in zip(nodes, nodes[1:], strict=False):
        a.link_to(b)
    graph.configure()
    return graph


def conform_clip(d: Delivery, frames: list[np.ndarray]) -> list[np.ndarray]:
    """A whole clip at once (tests, and callers that hold a scene)."""
    clip = ClipConform(d, len(frames))
    out = [f for frame in frames for f in clip.push(frame)]
    return out + clip.finish()


class DeliveryWriter:
    """The delivery mp4 and PNG sequence, fed the render's frames in film order (each
    scene's frames 0..n-1, gaps between them): every delivered frame is written as soon as
    the graph gives it. Labels as the render's deliverables: the mp4's tags, each PNG's
    text, and with `label` the visible mark, burned into the delivered frame (after the
    conform, so it stays as sharp and as large as on the render)."""

    def __init__(self, d: Delivery, mp4: Path, frames_dir: Path | None, *, title: str,
                 start_frame: int = 0, label: bool = False, png_bits: int = 8):
        self.delivery, self.mp4, self.frames_dir = d, Path(mp4), frames_dir
        self.label, self.png_bits = label, png_bits
        self.movie = Mp4Writer(mp4, d.fps, d.width, d.height,
                               metadata={"title": title, **label_tags("mp4")},
                               start_timecode=timecode(d.frames(start_frame), d.fps))
        self.sequences: dict[Path, list[Path]] = {}
        # Delivered frames per scene and per gap, in film order (what the audio follows).
        self.slots: list[tuple[str | None, int]] = []
        self._clip: ClipConform | None = None
        self._scene = ""

    def write(self, scene_id: str, index: int, frame: np.ndarray, scene_frames: int) -> None:
        """Frame `index` of a scene of `scene_frames` rendered frames."""
        if index == 0:
            self._clip, self._scene = ClipConform(self.delivery, scene_frames), scene_id
            self.slots.append((scene_id, 0))
        assert self._clip is not None and scene_id == self._scene, "frames out of film order"
        self._deliver(self._clip.push(frame))
        if index == scene_frames - 1:
            self._deliver(self._clip.finish())
            self._clip = None

    def gap(self, frames_in: int) -> None:
        """A gap of `frames_in` rendered-rate frames: black, conformed by the same rule."""
        n = self.delivery.frames(frames_in)
        black = np.zeros((self.delivery.height, self.delivery.width, 3), np.uint8)
        for _ in range(n):
            self.movie.write(black)
        self.slots.append((None, n))

    def _deliver(self, frames: list[np.ndarray]) -> None:
        for frame in frames:
            if self.label:
                frame = burn_label(frame)
            self.movie.write(frame)
            scene, k = self.slots[-1]
            if self.frames_dir is not None:
                path = stills.frame_path(self.frames_dir, scene, k, ".png")
                stills.write_png(path, frame, label_tags("png"), bits=self.png_bits)
                self.sequences.setdefault(path.parent, []).append(path)
            self.slots[-1] = (scene, k + 1)

    def close(self) -> None:
        self.movie.close()

    def record(self) -> dict[str, object]:
        """What was conformed, for the manifests and credentials of these files."""
        return {**self.delivery.record(), "filters": describe(self.delivery),
                "clips": [{"scene": s, "frames": n} for s, n in self.slots]}
