"""Delivery conform: the film's `delivery:` (a frame rate and size for the edit), checked,
and the exact rules that map rendered frames to delivered ones (pure: no av, no numpy).

Frame counts. A scene of N frames rendered at fps_in covers [0, N / fps_in). Its delivered
clip at fps_out has

    M = floor(N * fps_out / fps_in)

frames: delivered frame k exists only if its whole display interval [k, k+1) / fps_out lies
inside the rendered clip, so a delivery never shows time the render did not cover (no
frame held past the end). 81 frames at 16 fps (5.0625 s) are 121.5 frames at 24 fps; the
clip gets 121 (5.0417 s) and the last 1/48 s is not delivered:

    render 16 fps  |  0  |  1  |  2  | ... |  79 |  80 |                  81 frames, 5.0625 s
    deliver 24 fps |0|0|1|2|2|3|4|4| ...   |118|119|120|(121.5)           121 frames, 5.0417 s
                   └ drop: frame k shows render frame floor(k * 16 / 24), the one on screen
                     at k / 24 (blend / interpolate: made from the two around that time)

This is OpenTimelineIO's `RationalTime(81, 16).rescaled_to(24).to_frames()` (121: it
truncates), editors' whole-frame clip durations, and the rule farm.media.decode already
applies to input videos (a source of N frames at fps_in can give floor(N * fps_out /
fps_in) frames). ffmpeg's `fps` filter rounds the end to nearest (122 here), so the conform
ends each clip with `trim=end_frame=M` (farm.media.conform): the graph itself cuts there.

Each scene (and each gap) is conformed on its own: hard cuts stay on frame boundaries, no
frame blends two shots, and each scene's sound starts with its first delivered frame. A
film of several scenes can be shorter than the render by less than one delivered frame per
scene and gap; the timecode of every cut is whole frames at fps_out (`conformed_frames` of
each slot).

Size. The picture is scaled with ffmpeg's `scale` (flags = `scale:`). When the delivery's
aspect ratio differs from the render's, `fit:` must say how: `pad` scales the whole picture
inside the frame and adds black bars (letter- / pillarbox), `crop` fills the frame and cuts
the overflow, both centred; the scaled size is rounded to even pixels (4:2:0 video).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from farm.spec.errors import FieldError

# Editorial rates (film, PAL, NTSC-integer and their doubles); the film's own rate is
# always allowed too (a size-only conform).
DELIVERY_RATES = (24, 25, 30, 48, 50, 60)
# UHD in either orientation: the longer side up to 3840, the shorter up to 2160.
MAX_LONG_SIDE, MAX_SHORT_SIDE = 3840, 2160
# ffmpeg swscale flags (`scale=...:flags=`), the user-facing subset.
ScaleFilter = Literal["lanczos", "bicubic", "bilinear", "spline", "area", "neighbor"]
# drop: ffmpeg `fps` (frames repeated or dropped); blend: `framerate` (neighbouring frames
# mixed by time); interpolate: `minterpolate` (motion-compensated in-betweens).
FpsMethod = Literal["drop", "blend", "interpolate"]
Fit = Literal["pad", "crop"]


class DeliverySpec(BaseModel):
    """`delivery:` of a storyboard, as written (None: the render's value)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    fps: Annotated[int, Field(ge=1, le=240)] | None = None
    width: Annotated[int, Field(ge=2)] | None = None
    height: Annotated[int, Field(ge=2)] | None = None
    scale: ScaleFilter = "lanczos"
    fps_method: FpsMethod = "drop"
    fit: Fit | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A resolved delivery: every value set; `source_*` is what the farm renders."""

    fps: int
    width: int
    height: int
    scale: str
    fps_method: str
    # "pad", "crop", or "none" when the aspect ratios match.
    fit: str
    source_fps: int
    source_width: int
    source_height: int

    @property
    def retimed(self) -> bool:
        return self.fps != self.source_fps

    @property
    def resized(self) -> bool:
        return (self.width, self.height) != (self.source_width, self.source_height)

    def frames(self, n: int) -> int:
        """Delivered frames of a clip of `n` rendered frames (the module's rule)."""
        return conformed_frames(n, self.source_fps, self.fps)

    def record(self) -> dict[str, object]:
        """What provenance says was conformed."""
        return {"fps": {"from": self.source_fps, "to": self.fps},
                # "WxH" strings: C2PA's CBOR would store a list of small ints as bytes
                "size": {"from": f"{self.source_width}x{self.source_height}",
                         "to": f"{self.width}x{self.height}"},
                "scale": self.scale, "fps_method": self.fps_method if self.retimed else "none",
                "fit": self.fit, "frames_rule": f"floor(frames * {self.fps} / {self.source_fps})"}


def conformed_frames(n: int, fps_in: int, fps_out: int) -> int:
    """floor(n * fps_out / fps_in): the delivered frames wholly inside [0, n / fps_in)."""
    return n * fps_out // fps_in


def source_frame(k: int, fps_in: int, fps_out: int) -> int:
    """The rendered frame on screen at delivered frame k's start (the `drop` method)."""
    return k * fps_in // fps_out


def fit_geometry(d: Delivery) -> tuple[int, int, int, int]:
    """(scaled width, scaled height, x, y): the render scaled to (w, h), then placed at
    (x, y) in the delivered frame (pad) or the delivered frame cut at (x, y) out of it
    (crop). Sizes are even; offsets centre the picture."""
    sw, sh, W, H = d.source_width, d.source_height, d.width, d.height
    if d.fit == "none":
        return W, H, 0, 0
    by_width = (W * sh <= H * sw) == (d.fit == "pad")  # pad: the tighter side fits exactly
    w, h = (W, _even(W * sh / sw)) if by_width else (_even(H * sw / sh), H)
    return w, h, abs(W - w) // 2, abs(H - h) // 2


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


def resolve_delivery(spec: DeliverySpec | None, fps: int, width: int,
                     height: int) -> tuple[Delivery | None, list[FieldError]]:
    """Check `delivery:` against the film's render settings; nothing is clamped."""
    if spec is None:
        return None, []
    errors = _check_rate(spec, fps) + _check_size(spec)
    W, H = spec.width or width, spec.height or height
    fit = "none"
    if not errors and W * height != H * width:
        if spec.fit is None:
            errors.append(FieldError("delivery.fit", (
                f"the render is {width}x{height} and the delivery {W}x{H}, another aspect "
                "ratio; say how to fit it: pad (black bars) or crop (fill, cut the edges)")))
        fit = spec.fit or "none"
    if errors:
        return None, errors
    return Delivery(fps=spec.fps or fps, width=W, height=H, scale=spec.scale,
                    fps_method=spec.fps_method, fit=fit, source_fps=fps, source_width=width,
                    source_height=height), []


def _check_rate(spec: DeliverySpec, fps: int) -> list[FieldError]:
    if spec.fps is None or spec.fps == fps or spec.fps in DELIVERY_RATES:
        return []
    allowed = ", ".join(str(r) for r in DELIVERY_RATES)
    return [FieldError("delivery.fps", (
        f"{spec.fps} is not a delivery rate; allowed: {allowed}, or the film's own {fps}"))]


def _check_size(spec: DeliverySpec) -> list[FieldError]:
    if (spec.width is None) != (spec.height is None):
        given, missing = ("width", "height") if spec.height is None else ("height", "width")
        return [FieldError(f"delivery.{missing}", f"give it with delivery.{given} (both or "
                                                  "neither; neither keeps the render size)")]
    if spec.width is None or spec.height is None:
        return []
    errors = [FieldError(f"delivery.{name}", f"{v} is odd; 4:2:0 video needs even sizes "
                                             f"(nearest: {v - 1} or {v + 1})")
              for name, v in (("width", spec.width), ("height", spec.height)) if v % 2]
    long, short = max(spec.width, spec.height), min(spec.width, spec.height)
    if long > MAX_LONG_SIDE or short > MAX_SHORT_SIDE:
        errors.append(FieldError("delivery.width", (
            f"{spec.width}x{spec.height} is larger than UHD; allowed: up to "
            f"{MAX_LONG_SIDE}x{MAX_SHORT_SIDE} (or {MAX_SHORT_SIDE}x{MAX_LONG_SIDE})")))
    return errors
