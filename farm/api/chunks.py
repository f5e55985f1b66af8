"""Frames and files as streams of chunks (the API's byte transport, both directions).

    ArchivedFrame ──frame_messages──> pb.StreamFramesResponse chunks ──FrameAssembler──> Frame
    file ──artifact_chunks──> pb.GetArtifactResponse chunks
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from farm.api.protos import pb

if TYPE_CHECKING:
    from farm.director.archive import ArchivedFrame

# Largest `data` payload of one streamed message: well under gRPC's 4 MiB default limit,
# so a 1080p RGB24 frame (6.2 MB) travels as 6 messages instead of being refused.
CHUNK_BYTES = 1 << 20
ENCODINGS = {"png": pb.FRAME_ENCODING_PNG, "jpeg": pb.FRAME_ENCODING_JPEG,
             "rgb24": pb.FRAME_ENCODING_RGB24}


def encode_frame(path: Path, encoding: int, jpeg_quality: int) -> bytes:
    """An archived PNG in the requested encoding (PNG is sent as stored: lossless)."""
    if encoding in (pb.FRAME_ENCODING_UNSPECIFIED, pb.FRAME_ENCODING_PNG):
        return path.read_bytes()
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    if encoding == pb.FRAME_ENCODING_RGB24:
        return np.asarray(rgb, dtype=np.uint8).tobytes()
    from farm.media.provenance import label_tags

    buf = io.BytesIO()  # the label as a JPEG comment (COM), as PNG frames carry it as text
    rgb.save(buf, format="JPEG", quality=jpeg_quality,
             comment=label_tags("png")["Comment"].encode())
    return buf.getvalue()


def frame_messages(frame: ArchivedFrame, size: tuple[int, int], encoding: int,
                   jpeg_quality: int) -> Iterator[pb.StreamFramesResponse]:
    """One frame as messages of at most CHUNK_BYTES of data each."""
    from farm.media.provenance import LABEL

    data = encode_frame(frame.path, encoding, jpeg_quality)
    encoding = encoding or pb.FRAME_ENCODING_PNG
    for offset in range(0, max(len(data), 1), CHUNK_BYTES):
        yield pb.StreamFramesResponse(
            scene_id=frame.scene_id, frame_index=frame.index, film_frame_index=frame.film_index,
            width=size[0], height=size[1], encoding=encoding, size_bytes=len(data),
            offset=offset, data=data[offset:offset + CHUNK_BYTES], label=LABEL)


def artifact_chunks(path: Path, file_name: str, mime_type: str) -> Iterator[pb.GetArtifactResponse]:
    size = path.stat().st_size
    with path.open("rb") as f:
        offset = 0
        while offset < size or offset == 0:
            data = f.read(CHUNK_BYTES)
            yield pb.GetArtifactResponse(file_name=file_name, mime_type=mime_type,
                                         size_bytes=size, offset=offset, data=data)
            offset += len(data)
            if not data:
                break


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame as a client receives it."""

    scene_id: str
    # Frame number within the scene and within the film (0-based).
    index: int
    film_index: int
    width: int
    height: int
    # "png", "jpeg" or "rgb24".
    encoding: str
    data: bytes
    # "AI-generated": the server's label of every frame (PNG and JPEG data say it too).
    label: str = ""

    def to_array(self) -> np.ndarray:
        """(height, width, 3) uint8 RGB."""
        if self.encoding == "rgb24":
            return np.frombuffer(self.data, dtype=np.uint8).reshape(self.height, self.width, 3)
        with Image.open(io.BytesIO(self.data)) as im:
            return np.asarray(im.convert("RGB"))


_ENCODING_WORDS = {v: k for k, v in ENCODINGS.items()}


class FrameAssembler:
    """Joins the chunks of StreamFrames messages into whole frames, in order."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._have = 0

    def add(self, msg: pb.StreamFramesResponse) -> Frame | None:
        """The frame this chunk completes, else None; a chunk out of place is an error."""
        if msg.offset != self._have:
            raise ValueError(f"chunk of frame {msg.film_frame_index} at offset {msg.offset}, "
                             f"expected {self._have}")
        self._parts.append(msg.data)
        self._have += len(msg.data)
        if self._have < msg.size_bytes:
            return None
        data = b"".join(self._parts)
        self._parts, self._have = [], 0
        return Frame(msg.scene_id, msg.frame_index, msg.film_frame_index, msg.width, msg.height,
                     _ENCODING_WORDS.get(msg.encoding, "png"), data, msg.label)

    def reset(self) -> None:
        """Drop a partial frame (its stream broke; the resumed stream resends it whole)."""
        self._parts, self._have = [], 0
