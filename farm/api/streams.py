"""The FilmService streaming RPCs (WatchFilm, StreamFrames, GetArtifact), a part of
farm.api.service.FilmApi: each takes `alive`, a callable the adapter supplies (the call is
still wanted), checked at least every `poll_seconds` while waiting for the film, so a
dropped client frees its thread; each holds one of its tenant's stream slots.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from farm.api import chunks, convert
from farm.api.errors import InvalidArgument
from farm.api.names import film_id as _film_id
from farm.api.protos import pb
from farm.director.director import Director
from farm.director.errors import FailedPrecondition, ResourceExhausted
from farm.director.records import FilmInfo
from farm.media.provenance import DIR_MANIFEST, SIDECAR_SUFFIX
from farm.spec.errors import FieldError
from farm.stitch.stream import StreamClosed


def _always() -> bool:
    return True


def _limited(method):
    """A streaming RPC that holds one of the tenant's stream slots while it runs."""
    @functools.wraps(method)
    def stream(self, request, tenant, *args, **kwargs):
        with self._stream_slot(tenant):
            yield from method(self, request, tenant, *args, **kwargs)
    return stream


class StreamApi:
    director: Director
    poll_seconds: float
    # Open streams per tenant: one tenant cannot take every server thread with streams.
    max_streams_per_tenant: int
    _streams: Counter[str]
    _streams_lock: threading.Lock

    def _init_streams(self, poll_seconds: float, max_streams_per_tenant: int) -> None:
        self.poll_seconds, self.max_streams_per_tenant = poll_seconds, max_streams_per_tenant
        self._streams = Counter()
        self._streams_lock = threading.Lock()

    @contextmanager
    def _stream_slot(self, tenant: str):
        with self._streams_lock:
            if self._streams[tenant] >= self.max_streams_per_tenant:
                raise ResourceExhausted(f"tenant {tenant!r} has {self._streams[tenant]} streams "
                                        f"open, its limit; close one first")
            self._streams[tenant] += 1
        try:
            yield
        finally:
            with self._streams_lock:
                self._streams[tenant] -= 1

    @_limited
    def watch_film(self, request: pb.WatchFilmRequest, tenant: str,
                   alive: Callable[[], bool] = _always) -> Iterator[pb.WatchFilmResponse]:
        film_id = _film_id(request.name)
        if request.after_sequence < 0:
            raise InvalidArgument([FieldError("after_sequence", "must be >= 0")])
        self.director.get_film(film_id, tenant)  # NOT_FOUND / PERMISSION_DENIED up front
        after = request.after_sequence
        while alive():
            try:
                for event in self.director.watch(film_id, tenant, after, timeout=self.poll_seconds):
                    yield convert.event_to_pb(event)
                    after = event.seq
                return
            except TimeoutError:
                continue  # nothing new: check the caller is still there, then wait again

    @_limited
    def stream_frames(self, request: pb.StreamFramesRequest, tenant: str,
                      alive: Callable[[], bool] = _always) -> Iterator[pb.StreamFramesResponse]:
        film_id = _film_id(request.name)
        info = self.director.get_film(film_id, tenant)
        pos, encoding, quality = self._frames_args(request, info)
        size = (info.film.width, info.film.height)
        while alive():
            try:
                for frame in self.director.frames(film_id, tenant, index=pos,
                                                  timeout=self.poll_seconds):
                    yield from chunks.frame_messages(frame, size, encoding, quality)
                    pos = frame.film_index + 1
                return
            except TimeoutError:
                continue
            except StreamClosed as exc:
                raise FailedPrecondition(f"films/{film_id} delivers "
                                         f"no more frames: {exc}") from None

    @_limited
    def get_artifact(self, request: pb.GetArtifactRequest,
                     tenant: str) -> Iterator[pb.GetArtifactResponse]:
        film_id = _film_id(request.name)
        if request.rendition == pb.RENDITION_DELIVERY:
            yield from self._delivered(film_id, request.scene_id, tenant)
            return
        if request.rendition not in pb.Rendition.values():
            raise InvalidArgument([FieldError("rendition", f"unknown value {request.rendition}")])
        if not request.scene_id:
            mp4 = self.director.mp4_path(film_id, tenant)
            yield from chunks.artifact_chunks(mp4, "film.mp4", "video/mp4")
            yield from _manifest(mp4.with_name(mp4.name + SIDECAR_SUFFIX))
            return
        info = self.director.get_film(film_id, tenant)
        scene = next((s for s in info.scenes if s.id == request.scene_id), None)
        if scene is None:
            raise InvalidArgument([FieldError("scene_id", f"films/{film_id} has no scene "
                                              f"{request.scene_id!r}")])
        if scene.frames_done < scene.num_frames:
            raise FailedPrecondition(f"scene {scene.id} has {scene.frames_done} of "
                                     f"{scene.num_frames} frames; its PNGs exist "
                                     "once all are rendered")
        frames = self.director.frames(film_id, tenant, scene.id, 0, timeout=self.poll_seconds)
        folder = None
        for frame in itertools.islice(frames, scene.num_frames):
            folder = frame.path.parent
            yield from chunks.artifact_chunks(frame.path, f"{scene.id}/{frame.path.name}",
                                               "image/png")
        if folder is not None:  # written when the film finishes (the PNGs are signed already)
            yield from _manifest(folder / DIR_MANIFEST, f"{scene.id}/{DIR_MANIFEST}")

    def _delivered(self, film_id: str, scene_id: str,
                   tenant: str) -> Iterator[pb.GetArtifactResponse]:
        """The film's delivery conform (farm.media.conform): delivery.mp4, or a scene's
        conformed PNGs, each with its manifest; made when the film succeeds."""
        info = self.director.get_film(film_id, tenant)
        if info.film is None or info.film.delivery is None:
            raise InvalidArgument([FieldError("rendition", f"films/{film_id} has no delivery "
                                              "to conform to; use RENDITION_RENDER")])
        if scene_id and scene_id not in {s.id for s in info.scenes}:
            raise InvalidArgument([FieldError("scene_id", f"films/{film_id} has no scene "
                                              f"{scene_id!r}")])
        mp4 = self.director.mp4_path(film_id, tenant).with_name("delivery.mp4")
        if not scene_id:
            yield from chunks.artifact_chunks(mp4, mp4.name, "video/mp4")
            yield from _manifest(mp4.with_name(mp4.name + SIDECAR_SUFFIX))
            return
        folder = mp4.parent / "delivery" / scene_id
        for path in sorted(folder.glob("*.png")):
            yield from chunks.artifact_chunks(path, f"{scene_id}/{path.name}", "image/png")
        yield from _manifest(folder / DIR_MANIFEST, f"{scene_id}/{DIR_MANIFEST}")

    @staticmethod
    def _frames_args(request: pb.StreamFramesRequest, info: FilmInfo) -> tuple[int, int, int]:
        violations = []
        if request.encoding not in pb.FrameEncoding.values():
            violations.append(FieldError("encoding", f"unknown value {request.encoding}"))
        quality = request.jpeg_quality or 90
        if not 1 <= quality <= 100:
            violations.append(FieldError("jpeg_quality", f"must be in [1, 100], got {quality}"))
        pos, error = _position(info, request.start_scene_id, request.start_frame)
        if error is not None:
            violations.append(error)
        if violations:
            raise InvalidArgument(violations)
        return pos, request.encoding, quality


def _position(info: FilmInfo, scene_id: str, index: int) -> tuple[int, FieldError | None]:
    """Film frame index of frame `index` of `scene_id` (of the film if no scene)."""
    if not scene_id:
        if 0 <= index < info.frames_total:
            return index, None
        return 0, FieldError("start_frame",
                             f"the film has frames 0..{info.frames_total - 1}, not {index}")
    offset = 0
    for s in info.scenes:
        if s.id == scene_id:
            if 0 <= index < s.num_frames:
                return offset + index, None
            return 0, FieldError("start_frame",
                                 f"scene {scene_id} has frames 0..{s.num_frames - 1}, "
                                 f"not {index}")
        offset += s.num_frames
    return 0, FieldError("start_scene_id", f"the film has no scene {scene_id!r}")


def _manifest(path: Path, name: str | None = None) -> Iterator[pb.GetArtifactResponse]:
    """A deliverable's provenance manifest, when the farm has written it."""
    if path.is_file():
        yield from chunks.artifact_chunks(path, name or path.name, "application/json")
