"""Media in: one interface that turns an image or video (path or URL) into RGB frames at
the scene's size and frame rate; farm.model turns them into normalised tensors.

    location ──read_bytes──> bytes ──backend──> uint8 RGB (H, W, 3) / (F, H, W, 3)
      path or fsspec URL               "dali": NVIDIA DALI (GPU: nvJPEG, NVDEC h264/hevc;
                                               CPU: images, VP8, VP9)
                                       "pyav": Pillow (images), PyAV (video)

Which backend: `choose_backend(device)` takes DALI on a CUDA worker when it is installed
(the optional `dali` extra), PyAV/Pillow otherwise. Both give the same frames: the video
colour conversion is the same (BT.601 limited range, bilinear chroma upsampling, as
DALI's decoder does; PyAV's own rgb24 conversion upsamples chroma by repetition), and
both resize with Lanczos-3 (Pillow's LANCZOS, DALI's antialiased INTERP_LANCZOS3), which
agree to the tolerance tests/media states.

Frame rate: output frame i shows the source frame on screen at i / fps (the last one that
started at or before it). Every failure is a MediaError naming the file and the problem.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

Size = tuple[int, int]  # (width, height)


class MediaError(ValueError):
    """A media input that cannot be read or decoded, or does not fit the scene."""

    def __init__(self, location: str, problem: str):
        super().__init__(f"{location}: {problem}")
        self.location, self.problem = location, problem


def read_bytes(location: str) -> bytes:
    """The file's bytes: a local path, or any URL fsspec can open."""
    try:
        if "://" in location:
            import fsspec

            with fsspec.open(location, "rb") as f:
                return f.read()
        with open(location, "rb") as f:
            return f.read()
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's problem
        raise MediaError(location, f"cannot read: {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True, slots=True)
class VideoInfo:
    codec: str
    width: int
    height: int
    fps: Fraction
    frames: int

    @property
    def seconds(self) -> float:
        return float(self.frames / self.fps)


def probe_video(data: bytes, location: str) -> VideoInfo:
    """Codec, size, frame rate and frame count (counted by demuxing: no decode)."""
    import av

    try:
        with av.open(io.BytesIO(data)) as c:
            if not c.streams.video:
                raise MediaError(location, "has no video stream")
            s = c.streams.video[0]
            fps = s.average_rate or s.guessed_rate
            if not fps:
                raise MediaError(location, "has no frame rate")
            frames = sum(1 for p in c.demux(s) if p.size > 0)
            return VideoInfo(s.codec_context.name, s.width, s.height, Fraction(fps), frames)
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001 - PyAV raises many kinds
        raise MediaError(location, f"cannot read video: {type(exc).__name__}: {exc}") from None


def frame_indices(info: VideoInfo, fps: int, count: int, start: int = 0) -> list[int]:
    """Source frames shown at output frames [start, start + count) at `fps`."""
    return [int(Fraction(i) * info.fps / fps) for i in range(start, start + count)]


def is_image(location: str) -> bool:
    """Whether Pillow recognises the file as a still image (else it is taken as video)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(read_bytes(location))) as im:
            return getattr(im, "n_frames", 1) == 1
    except (UnidentifiedImageError, OSError):
        return False


def choose_backend(device: str) -> str:
    """DALI on a CUDA worker that has it, else PyAV/Pillow."""
    if str(device).startswith("cuda"):
        from farm.media.dali_decode import available

        if not available():
            return "dali"
    return "pyav"


def decode_image(location: str, size: Size | None = None, backend: str = "pyav",
                 device: str = "cpu") -> np.ndarray:
    """RGB uint8 (H, W, 3), resized to `size` (Lanczos) when given."""
    data = read_bytes(location)
    try:
        if backend == "dali":
            from farm.media.dali_decode import decode_image as dali_image

            return dali_image(data, size, "gpu" if str(device).startswith("cuda") else "cpu")
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            if size is not None and im.size != tuple(size):
                im = im.resize(tuple(size), resample=Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8).copy()
    except Exception as exc:  # noqa: BLE001 - Pillow / DALI raise many kinds
        raise MediaError(location, f"cannot decode image: {type(exc).__name__}: {exc}") from None


def decode_video(location: str, fps: int, count: int, size: Size | None = None, start: int = 0,
                 backend: str = "pyav", device: str = "cpu") -> np.ndarray:
    """Output frames [start, start + count) at `fps`, RGB uint8 (F, H, W, 3)."""
    data = read_bytes(location)
    info = probe_video(data, location)
    need = Fraction(start + count, fps)
    if info.frames == 0 or need > Fraction(info.frames) / info.fps:
        raise MediaError(location, (
            f"is {info.seconds:.3f} s ({info.frames} frames at {float(info.fps):g} fps); the "
            f"scene needs {float(need):.3f} s ({start + count} frames at {fps} fps)"))
    indices = frame_indices(info, fps, count, start)
    try:
        if backend == "dali":
            from farm.media.dali_decode import decode_video as dali_video

            return dali_video(data, indices, size,
                              "gpu" if str(device).startswith("cuda") else "cpu")
        return _pyav_video(data, indices, size)
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MediaError(location, f"cannot decode video: {type(exc).__name__}: {exc}") from None


def _pyav_video(data: bytes, indices: list[int], size: Size | None) -> np.ndarray:
    import av
    from PIL import Image

    wanted: dict[int, list[int]] = {}
    for k, src in enumerate(indices):
        wanted.setdefault(src, []).append(k)
    out: list[np.ndarray | None] = [None] * len(indices)
    with av.open(io.BytesIO(data)) as c:
        for n, frame in enumerate(c.decode(video=0)):
            if n in wanted:
                rgb = to_rgb(frame)
                if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
                    rgb = np.asarray(Image.fromarray(rgb).resize(
                        tuple(size), resample=Image.Resampling.LANCZOS))
                for k in wanted[n]:
                    out[k] = rgb
            if n >= max(indices):
                break
    if any(f is None for f in out):
        raise ValueError("decoded fewer frames than the container lists "
                         f"(need frame {max(indices)})")
    return np.stack(out)  # type: ignore[arg-type]


# BT.601 / BT.709 (Kr, Kb): colorspace 1 is BT.709 (AVCOL_SPC_BT709), others BT.601.
_KRKB = {1: (0.2126, 0.0722)}


def to_rgb(frame) -> np.ndarray:
    """A decoded frame as RGB uint8 (H, W, 3). 4:2:0 YUV is converted here as DALI's
    decoder does (bilinear chroma upsampling, limited range unless tagged full)."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        return frame.to_ndarray(format="rgb24")
    h, w = frame.height, frame.width
    planes = frame.to_ndarray(format="yuv420p")  # (H * 3/2, W): Y, then U, then V
    y = planes[:h].astype(np.float32)
    hc, wc = (h + 1) // 2, (w + 1) // 2
    rest = planes[h:].reshape(-1)
    u = _upsample(rest[:hc * wc].reshape(hc, wc), h, w) - 128.0
    v = _upsample(rest[hc * wc:2 * hc * wc].reshape(hc, wc), h, w) - 128.0
    full = frame.format.name == "yuvj420p" or getattr(frame, "color_range", 0) == 2
    if not full:
        y, u, v = (y - 16.0) * (255 / 219), u * (255 / 224), v * (255 / 224)
    kr, kb = _KRKB.get(getattr(frame, "colorspace", 2), (0.299, 0.114))
    kg = 1.0 - kr - kb
    r = y + 2 * (1 - kr) * v
    b = y + 2 * (1 - kb) * u
    g = y - (2 * kb * (1 - kb) / kg) * u - (2 * kr * (1 - kr) / kg) * v
    return np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


def _upsample(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    """Half-resolution chroma to (h, w), bilinear with centred samples (edge clamped)."""
    p = plane.astype(np.float32)

    def axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(n_out) + 0.5) / 2 - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        return lo, np.minimum(lo + 1, n_in - 1), (pos - lo).astype(np.float32)

    y0, y1, fy = axis(h, p.shape[0])
    x0, x1, fx = axis(w, p.shape[1])
    rows = p[y0] * (1 - fy)[:, None] + p[y1] * fy[:, None]
    return rows[:, x0] * (1 - fx)[None, :] + rows[:, x1] * fx[None, :]
