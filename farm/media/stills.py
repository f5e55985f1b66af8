"""Image-sequence frames as deliverables: PNG (8 or 16 bits) and OpenEXR, each carrying
text metadata (the "AI-generated" label) inside the file.

    8-bit PNG   Pillow, tEXt chunks
    16-bit PNG  written here (Pillow cannot write 16-bit RGB): value * 257, so 0 -> 0 and
                255 -> 65535 exactly and `v // 257` gives the rendered frame back
    OpenEXR     the `OpenEXR` package (optional): half-float, scene-linear (the sRGB frame
                decoded with the sRGB curve, as compositors expect EXRs to be), ZIP
                compressed; header attributes carry the label. Half floats hold every
                8-bit sRGB value closely enough that encoding back gives the frame exactly.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def frame_path(root: str | Path, scene_id: str, index: int, suffix: str) -> Path:
    """`<root>/<scene id>/<scene id>.<frame:04d><suffix>`, frame numbers starting at 1."""
    return Path(root) / scene_id / f"{scene_id}.{index + 1:04d}{suffix}"


def write_png(path: str | Path, frame: np.ndarray, text: dict[str, str], bits: int = 8) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if bits == 16:
        _write_png16(path, frame.astype(np.uint16) * 257, text)
    elif bits == 8:
        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
        Image.fromarray(frame).save(path, format="PNG", compress_level=1, pnginfo=info)
    else:
        raise ValueError(f"PNG bit depth must be 8 or 16, not {bits}")
    return path


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _write_png16(path: Path, rgb16: np.ndarray, text: dict[str, str]) -> None:
    h, w, _ = rgb16.shape
    rows = np.ascontiguousarray(rgb16, dtype=">u2").view(np.uint8).reshape(h, w * 6)
    # Filter type 0 (none) on every row: a leading zero byte per scanline.
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)  # 16 bits, truecolour RGB
    parts = [PNG_SIGNATURE, _chunk(b"IHDR", ihdr)]
    parts += [_chunk(b"tEXt", k.encode("latin-1") + b"\0" + v.encode("latin-1"))
              for k, v in text.items()]
    parts += [_chunk(b"IDAT", zlib.compress(raw, 6)), _chunk(b"IEND", b"")]
    path.write_bytes(b"".join(parts))


def png_text(path: str | Path) -> dict[str, str]:
    """The text chunks of a PNG (8 or 16 bits)."""
    with Image.open(path) as im:
        return dict(getattr(im, "text", {}) or {})


def exr_available() -> str:
    """'' when OpenEXR files can be written here, else why not."""
    try:
        import OpenEXR  # noqa: F401
    except ImportError as exc:
        return f"OpenEXR is not installed ({exc}); pip install OpenEXR"
    return ""


def srgb_to_linear(frame: np.ndarray) -> np.ndarray:
    c = frame.astype(np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    lin = np.clip(linear.astype(np.float64), 0.0, 1.0)
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.power(lin, 1 / 2.4) - 0.055)
    return np.round(c * 255.0).astype(np.uint8)


def write_exr(path: str | Path, frame: np.ndarray, text: dict[str, str]) -> Path:
    import OpenEXR

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
              **{k: v for k, v in text.items()}}
    pixels = np.ascontiguousarray(srgb_to_linear(frame).astype(np.float16))
    with OpenEXR.File(header, {"RGB": pixels}) as exr:
        exr.write(str(path))
    return path


def read_exr(path: str | Path) -> tuple[np.ndarray, dict[str, object]]:
    """(linear float RGB pixels, header) of an EXR written by write_exr."""
    import OpenEXR

    with OpenEXR.File(str(path)) as exr:
        header = dict(exr.header())
        channels = exr.channels()
        if "RGB" in channels:
            pixels = channels["RGB"].pixels
        else:
            pixels = np.stack([channels[c].pixels for c in "RGB"], axis=-1)
        return np.array(pixels), header
