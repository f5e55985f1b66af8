"""The media library: the photos, videos and recordings tenants upload, content-addressed.

    UploadMedia chunks ──Upload.write──> <root>/media/uploads/<random>.part   (sha256 and the
                                         byte limit as the bytes stream in: nothing is kept
                                         in memory, an oversized upload stops at the limit)
                       ──sniff (Pillow / PyAV)──> MediaInfo: kind, mime, size, duration, w x h
                       ──> <root>/media/blobs/<sha256>                       the bytes, once
                           <root>/media/tenants/<tenant key>/<sha256>.json   who may use it,
                                                                             its name, rights

A tenant sees only media it uploaded (`media/{sha256}` of another tenant's file is NOT_FOUND
to it, though the bytes are stored once). The catalog is files beside the blobs, so media
survive a restart on the same --artifacts and need no database. Workers read a blob by its
location (a path, or the store's URL), so the bytes go from the store to the worker that
decodes them; the director only ever handles names.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import fsspec

from farm.media.decode import MediaError

NAME = re.compile(r"^media/([0-9a-f]{64})$")
# A blob where the store keeps it (a path or URL ending .../media/blobs/<sha256>), also
# inside a decoder's error message.
_BLOB = r"/media/blobs/([0-9a-f]{64})"
KINDS = ("image", "audio", "video", "adapter")  # adapter: a LoRA's .safetensors file


@dataclass(frozen=True, slots=True)
class Rights:
    """Who holds the rights to a media file or gave consent, and where that is kept."""

    holder: str
    reference: str


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """What one upload may be (checked as it streams in, and once sniffed)."""

    max_bytes: int = 512 * 1024 * 1024
    max_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_seconds <= 0:
            raise ValueError(f"media limits must be positive, got {self}")


@dataclass(frozen=True, slots=True)
class MediaInfo:
    sha256: str
    kind: str  # one of KINDS
    mime_type: str
    size_bytes: int
    duration_s: float | None = None
    width: int = 0
    height: int = 0
    display_name: str = ""
    rights: Rights | None = None
    create_time: float = 0.0

    @property
    def name(self) -> str:
        return f"media/{self.sha256}"


class MediaRejected(ValueError):
    """An upload that is not usable media or breaks a limit; the message says which."""


class MediaLibrary:
    def __init__(self, url: str | Path, limits: MediaLimits = MediaLimits()):
        self.url = str(url).rstrip("/")
        self.limits = limits
        self.fs, root = fsspec.core.url_to_fs(self.url)
        self.root = f"{root}/media"
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                                else (self.fs.protocol,))
        for sub in ("blobs", "uploads", "tenants"):
            self.fs.makedirs(f"{self.root}/{sub}", exist_ok=True)

    # ---- where things are ---------------------------------------------------------------

    def location(self, sha256: str) -> str:
        """Where a worker reads the bytes: a local path, or the store's URL."""
        path = f"{self.root}/blobs/{sha256}"
        return path if self.local else self.fs.unstrip_protocol(path)

    def _entry(self, tenant: str, sha256: str) -> str:
        # Tenant names come from the tokens file: hashed, so any name is a safe folder.
        key = hashlib.sha256(tenant.encode()).hexdigest()[:24]
        return f"{self.root}/tenants/{key}/{sha256}.json"

    # ---- reads --------------------------------------------------------------------------

    def get(self, tenant: str, sha256: str) -> MediaInfo | None:
        """The tenant's media with this hash, or None (never another tenant's)."""
        try:
            data = json.loads(self.fs.cat_file(self._entry(tenant, sha256)))
        except (FileNotFoundError, ValueError):
            return None
        rights = data.pop("rights", None)
        return MediaInfo(**data, rights=Rights(**rights) if rights else None)

    def list(self, tenant: str) -> list[MediaInfo]:
        """The tenant's media, oldest first."""
        folder = self._entry(tenant, "x").rsplit("/", 1)[0]
        try:
            names = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        infos = [self.get(tenant, Path(n).stem) for n in names if n.endswith(".json")]
        return sorted((i for i in infos if i is not None), key=lambda i: (i.create_time, i.sha256))

    def describe(self, tenant: str, sha256: str) -> dict:
        """What a provenance record says of an uploaded input: its media name, the name
        it was uploaded under, and the rights statement it came with."""
        info = self.get(tenant, sha256) if sha256 else None
        if info is None:
            return {}
        out = {"media": info.name, "location": info.display_name or info.name}
        return out | ({"rights": asdict(info.rights)} if info.rights is not None else {})

    # ---- uploads ------------------------------------------------------------------------

    def put(self, tenant: str, chunks: Iterable[bytes], display_name: str = "",
            rights: Rights | None = None) -> MediaInfo:
        """Store an upload's bytes (once) and record it for the tenant. MediaRejected if
        it breaks a limit or is not an image, a video or a recording."""
        part = f"{self.root}/uploads/{uuid.uuid4().hex}.part"
        digest, size = hashlib.sha256(), 0
        try:
            with self.fs.open(part, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if size > self.limits.max_bytes:
                        raise MediaRejected(f"the file is larger than this server's limit of "
                                            f"{self.limits.max_bytes} bytes per media file")
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0:
                raise MediaRejected("the file is empty")
            sha = digest.hexdigest()
            info = self._sniffed(self.fs.cat_file(part), sha)
            blob = f"{self.root}/blobs/{sha}"
            if not self.fs.exists(blob):
                self.fs.mv(part, blob)
        finally:
            if self.fs.exists(part):
                self.fs.rm(part)
        old = self.get(tenant, sha)
        info = replace(info, display_name=display_name or (old.display_name if old else ""),
                       rights=rights or (old.rights if old else None),
                       create_time=old.create_time if old else time.time())
        self._write_entry(tenant, info)
        return info

    def _sniffed(self, data: bytes, sha: str) -> MediaInfo:
        info = sniff(data, sha)
        if info.duration_s is not None and info.duration_s > self.limits.max_seconds:
            raise MediaRejected(f"the {info.kind} plays {info.duration_s:.1f} s; this server's "
                                f"limit is {self.limits.max_seconds:g} s per media file")
        return info

    def _write_entry(self, tenant: str, info: MediaInfo) -> None:
        path = self._entry(tenant, info.sha256)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        body = json.dumps(asdict(info), indent=1).encode()
        if self.local:  # atomic: a reader never sees half an entry
            tmp = f"{path}.{os.getpid()}.tmp"
            Path(tmp).write_bytes(body)
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, body)


def blob_sha(location: str) -> str | None:
    """The sha256 of a blob's location in a media store, or None for any other file."""
    m = re.search(_BLOB + "$", location)
    return m.group(1) if m else None


def with_media_names(text: str) -> str:
    """`text` with every blob location replaced by its media name (what callers know)."""
    return re.sub(r"\S*" + _BLOB, lambda m: f"media/{m.group(1)}", text)


def parse_name(name: str) -> str | None:
    """The sha256 of `media/{sha256}`, or None if `name` is not a media name."""
    m = NAME.match(name)
    return m.group(1) if m else None


# ---- sniffing: what the bytes are, by decoding them (never by the file's name) -----------

# Checked in this order (FFmpeg names one demuxer for mov and mp4: "mov,mp4,m4a,...").
_VIDEO_MIME = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm",
               "matroska": "video/x-matroska", "avi": "video/x-msvideo", "gif": "image/gif"}
_AUDIO_MIME = {"flac": "audio/flac", "wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg",
               "mp4": "audio/mp4", "matroska": "audio/x-matroska", "webm": "audio/webm"}


def sniff(data: bytes, sha256: str) -> MediaInfo:
    """Kind, type, size and duration of the bytes; MediaRejected if they are none of
    image, video or audio."""
    from PIL import Image, UnidentifiedImageError

    if _is_safetensors(data):  # a LoRA adapter; whether it fits a model is checked per film
        return MediaInfo(sha256, "adapter", "application/x-safetensors", len(data))
    try:
        im = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return _sniff_av(data, sha256)
    with im:
        if getattr(im, "n_frames", 1) > 1:  # an animated GIF or WebP: a video
            return _sniff_av(data, sha256)
        try:
            im.load()  # an undecodable image fails here, not on a worker later
            with Image.open(io.BytesIO(data)) as check:
                check.verify()  # a truncated upload too: Pillow decodes a PNG cut before its
                # last IDAT's CRC without a word; verify checks every chunk's CRC and the end
        except (OSError, SyntaxError, ValueError) as exc:
            raise MediaRejected(f"a {im.format} image that cannot be decoded: {exc}") from None
        return MediaInfo(sha256, "image", Image.MIME.get(im.format, "image/x-unknown"),
                         len(data), width=im.width, height=im.height)


def _is_safetensors(data: bytes) -> bool:
    """A safetensors file: an 8-byte header length, then that many bytes of a JSON object."""
    if len(data) < 10:
        return False
    size = int.from_bytes(data[:8], "little")
    if not 2 <= size <= len(data) - 8 or data[8:9] != b"{":
        return False
    try:
        return isinstance(json.loads(data[8:8 + size]), dict)
    except ValueError:
        return False


def _first_frame(container, kind: str) -> None:
    """Decode the first picture or sound of a freshly opened container: demuxing alone
    accepts e.g. a PNG's 8-byte signature as a 0x0 video, or 6 bytes as 0-channel audio."""
    import av

    what = "picture" if kind == "video" else "sound"
    try:
        frame = next(container.decode(**{kind: 0}), None)
    except (av.FFmpegError, ValueError) as exc:
        raise MediaRejected(f"a {kind} file whose first {what} cannot be decoded: {exc}") from None
    if frame is None:
        empty = True
    elif kind == "video":
        empty = not (frame.width and frame.height)
    else:
        empty = not (frame.samples and frame.sample_rate)
    if empty:
        raise MediaRejected(f"a {kind} file whose first {what} cannot be decoded")


def _sniff_av(data: bytes, sha256: str) -> MediaInfo:
    """Only the containers named in _VIDEO_MIME/_AUDIO_MIME: FFmpeg's probe also takes a
    few zero bytes as CD+G karaoke or EA audio, formats no studio sends (and a smaller
    attack surface)."""
    import av

    try:
        with av.open(io.BytesIO(data)) as c:
            names = c.format.name.split(",")
            video = next((m for n, m in _VIDEO_MIME.items() if n in names), None)
            audio = next((m for n, m in _AUDIO_MIME.items() if n in names), None)
            if c.streams.video and video:
                from farm.media.decode import probe_video

                v = probe_video(data, "upload")
                if v.frames == 0:
                    raise MediaRejected("the video has no frames")
                _first_frame(c, "video")  # a truncated file fails here, not on a worker
                return MediaInfo(sha256, "video", video, len(data), v.seconds, v.width, v.height)
            if c.streams.audio and audio:
                s = c.streams.audio[0]
                seconds = (float(c.duration) / av.time_base if c.duration
                           else float((s.duration or 0) * s.time_base))
                _first_frame(c, "audio")
                return MediaInfo(sha256, "audio", audio, len(data), seconds)
    except MediaRejected:
        raise
    except (MediaError, av.FFmpegError, OSError, ValueError):
        pass
    raise MediaRejected("not an image, a video or a recording this server can read "
                        "(images: PNG, JPEG, WebP, ...; video: mp4, mov, webm, mkv, avi, GIF; "
                        "audio: FLAC, WAV, MP3, Ogg, m4a; LoRA adapters: .safetensors)")
