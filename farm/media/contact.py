"""Pictures about the film: a contact sheet (one labelled thumbnail strip per scene) and
the optional visible "AI-generated" label burnt into frames. Pillow's default font."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Thumbnails wider than this are scaled down (keeping the aspect); smaller frames stay
# at their own size, so a thumbnail of a small frame is the frame itself, pixel for pixel.
THUMB_MAX_WIDTH = 192
THUMBS_PER_SCENE = 6
PAD = 4
LABEL_HEIGHT = 16


def thumbnail_indices(num_frames: int, count: int = THUMBS_PER_SCENE) -> tuple[int, ...]:
    """Evenly spaced frames from the first to the last (every frame of a short scene)."""
    if num_frames <= count:
        return tuple(range(num_frames))
    return tuple(round(i * (num_frames - 1) / (count - 1)) for i in range(count))


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    if width <= THUMB_MAX_WIDTH:
        return width, height
    return THUMB_MAX_WIDTH, max(1, round(height * THUMB_MAX_WIDTH / width))


@dataclass
class SceneStrip:
    scene_id: str
    num_frames: int
    # (frame index, RGB uint8 frame) of the chosen thumbnails, in order.
    thumbs: list[tuple[int, np.ndarray]]


def thumb_origin(row: int, column: int, size: tuple[int, int]) -> tuple[int, int]:
    """Top-left pixel (x, y) of a thumbnail on the sheet (tests read thumbnails back)."""
    tw, th = size
    return PAD + column * (tw + PAD), PAD + row * (LABEL_HEIGHT + th + PAD) + LABEL_HEIGHT


def contact_sheet(strips: list[SceneStrip], width: int, height: int) -> np.ndarray:
    """One row per scene: its id, frame count and the frame number of each thumbnail."""
    size = thumbnail_size(width, height)
    columns = max((len(s.thumbs) for s in strips), default=1)
    text_w = max((_text_width(_caption(s)) for s in strips), default=0)
    sheet_w = max(PAD + columns * (size[0] + PAD), text_w + 2 * PAD)
    sheet_h = PAD + len(strips) * (LABEL_HEIGHT + size[1] + PAD)
    sheet = Image.new("RGB", (sheet_w, sheet_h), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for row, strip in enumerate(strips):
        y_text = PAD + row * (LABEL_HEIGHT + size[1] + PAD)
        draw.text((PAD, y_text + 2), _caption(strip), fill=(235, 235, 235), font=font)
        for column, (_, frame) in enumerate(strip.thumbs):
            thumb = Image.fromarray(frame)
            if thumb.size != size:
                thumb = thumb.resize(size, Image.Resampling.LANCZOS)
            sheet.paste(thumb, thumb_origin(row, column, size))
    return np.asarray(sheet)


def _caption(strip: SceneStrip) -> str:
    frames = ", ".join(str(i + 1) for i, _ in strip.thumbs)
    return f"{strip.scene_id}  ({strip.num_frames} frames; shown: {frames})"


def _text_width(text: str) -> int:
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text,
                                                            font=ImageFont.load_default())
    return int(box[2] - box[0])


def burn_label(frame: np.ndarray, text: str = "AI-generated") -> np.ndarray:
    """The frame with `text` on a dark box in its bottom-left corner (a visible label).
    The font scales with the frame so it stays legible without covering the picture."""
    h, w, _ = frame.shape
    im = Image.fromarray(frame)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=max(7, min(h, w) // 24))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    margin = max(1, min(h, w) // 64)
    x, y = margin, h - (bottom - top) - 3 * margin
    draw.rectangle((x - margin, y - margin, x + (right - left) + margin, h - margin),
                   fill=(0, 0, 0))
    draw.text((x - left, y - top), text, fill=(255, 255, 255), font=font)
    return np.asarray(im)
