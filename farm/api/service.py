"""The FilmService RPCs as plain methods: (request, tenant) -> response, or a generator of
responses for streaming RPCs. They raise domain errors (farm.director.errors,
farm.api.errors); an adapter maps those to gRPC statuses with farm.api.status.

No transport here: farm/api/server.py adapts this to grpc.server, and a Ray Serve
ingress (methods named like the RPCs) can call the same methods. Streaming methods take
`alive`, a callable the adapter supplies (the call is still wanted), checked at least
every `poll_seconds` while waiting for the film, so a dropped client frees its thread.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from google.api import field_behavior_pb2

from farm.api import chunks, convert
from farm.api.errors import InvalidArgument, ModelNotServed
from farm.api.media import MediaApi
from farm.api.paging import page_offset, page_token
from farm.api.protos import pb
from farm.director.director import Director
from farm.director.errors import FailedPrecondition, ResourceExhausted
from farm.director.records import FilmInfo
from farm.media.library import MediaLibrary, with_media_names
from farm.media.probe import check_media
from farm.media.provenance import DIR_MANIFEST, SIDECAR_SUFFIX
from farm.sched.fairness import priority_problem
from farm.spec.errors import FieldError, SpecError
from farm.spec.film import Film, final_film, resolve_film
from farm.spec.profiles import profile_for
from farm.spec.storyboard import parse_storyboard
from farm.stitch.stream import StreamClosed

_NAME = re.compile(r"^films/([a-z0-9][a-z0-9_-]{0,63})$")
_FILTER = re.compile(r'^\s*state\s*=\s*"?([A-Za-z_]+)"?\s*$')
DEFAULT_PAGE_SIZE = 50
DEFAULT_EXECUTIONS_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_REQUEST_ID = 128
DEFAULT_PRIORITY = 50
# UpdateFilm: the film fields that may change after creation (the spec is immutable).
UPDATABLE = ("priority",)


def _always() -> bool:
    return True


def _limited(method):
    """A streaming RPC that holds one of the tenant's stream slots while it runs."""
    @functools.wraps(method)
    def stream(self, request, tenant, *args, **kwargs):
        with self._stream_slot(tenant):
            yield from method(self, request, tenant, *args, **kwargs)
    return stream


class FilmApi(MediaApi):
    def __init__(self, director: Director, models: Mapping[str, str], *, poll_seconds: float = 1.0,
                 checks: Callable[[Film], list[FieldError]] | None = None,
                 max_streams_per_tenant: int = 32, media: MediaLibrary | None = None,
                 require_rights: bool = False):
        """`models`: the served model names (as films name them) -> model family; the
        first one is the default for films that name none. `checks`: the farm's limits
        (farm.model.footprint.edge_checks), applied to every film before it is queued.
        `media`: the uploaded media (farm.media.library); `require_rights`: refuse films
        whose photo, video or voice inputs carry no rights statement."""
        self.media, self.require_rights = media, require_rights
        if not models:
            raise ValueError("a server must serve at least one model")
        self.director, self.models, self.poll_seconds = director, dict(models), poll_seconds
        self.default_model = next(iter(self.models))
        self.checks = checks or (lambda film: [])
        # Open WatchFilm/StreamFrames/GetArtifact calls per tenant: one tenant cannot take
        # every server thread with streams.
        self.max_streams_per_tenant = max_streams_per_tenant
        self._streams: Counter[str] = Counter()
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

    # ---- unary ----------------------------------------------------------------------------

    def create_film(self, request: pb.CreateFilmRequest, tenant: str) -> pb.Film:
        film, priority = self._checked_film(request, tenant)
        info = self.director.create_film(film, tenant=tenant, request_id=request.request_id,
                                         priority=priority)
        return convert.info_to_film(info)

    def _checked_film(self, request: pb.CreateFilmRequest, tenant: str) -> tuple[Film, int]:
        """The requested film, resolved for its model; every problem in one InvalidArgument
        (the model not served, a FAILED_PRECONDITION, only once the request is well formed)."""
        if not request.HasField("film"):
            raise InvalidArgument([FieldError("film", "required field is missing")])
        spec = request.film
        violations = []
        if len(request.request_id) > MAX_REQUEST_ID:
            violations.append(FieldError("request_id", f"at most {MAX_REQUEST_ID} characters"))
        priority = spec.priority if spec.HasField("priority") else DEFAULT_PRIORITY
        if (problem := priority_problem(priority)) is not None:
            violations.append(FieldError("film.priority", problem))
        board = film = None
        try:
            board = parse_storyboard(convert.film_to_storyboard(spec))
        except SpecError as exc:
            violations += self._violations(exc, spec)
        model = spec.model or self.default_model
        if board is not None and model not in self.models:
            if violations:
                raise InvalidArgument(violations)
            raise ModelNotServed(model, list(self.models))
        if board is not None:
            try:  # the model's rules; reported together with the request's other problems
                film = resolve_film(board, profile_for(self.models[model]), model=model,
                                    locator=self.media_locator(tenant))
                violations += [FieldError(convert.request_path(e.path, spec), e.message)
                               for e in self.checks(film)]
                violations += [FieldError(convert.request_path(e.path, spec),
                                          with_media_names(e.message))
                               for e in check_media(film)]
            except SpecError as exc:
                violations += self._violations(exc, spec)
        if violations or film is None:
            raise InvalidArgument(violations)
        return film, priority

    @staticmethod
    def _violations(exc: SpecError, spec: pb.Film) -> list[FieldError]:
        return [FieldError(convert.request_path(e.path, spec), e.message) for e in exc.errors]

    def get_film(self, request: pb.GetFilmRequest, tenant: str) -> pb.Film:
        return convert.info_to_film(self.director.get_film(_film_id(request.name), tenant))

    def list_films(self, request: pb.ListFilmsRequest, tenant: str) -> pb.ListFilmsResponse:
        if request.page_size < 0:
            raise InvalidArgument([FieldError("page_size",
                                              f"must be >= 0, got {request.page_size}")])
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        state = _parse_filter(request.filter)
        try:
            infos, token = self.director.list_films(tenant, state, size, request.page_token)
        except ValueError as exc:
            raise InvalidArgument([FieldError("page_token", str(exc))]) from None
        return pb.ListFilmsResponse(films=[convert.info_to_film(i) for i in infos],
                                    next_page_token=token)

    def cancel_film(self, request: pb.CancelFilmRequest, tenant: str) -> pb.Film:
        return convert.info_to_film(self.director.cancel_film(_film_id(request.name), tenant))

    # ---- controls: update, state transitions (AIP-136), the render log --------------------

    def update_film(self, request: pb.UpdateFilmRequest, tenant: str) -> pb.Film:
        if not request.HasField("film"):
            raise InvalidArgument([FieldError("film", "required field is missing")])
        film_id = _film_id(request.film.name, "film.name")
        if not _update_paths(request):  # nothing to change (AIP-134: an empty implied mask)
            return self.get_film(pb.GetFilmRequest(name=request.film.name), tenant)
        spec = request.film
        priority = spec.priority if spec.HasField("priority") else DEFAULT_PRIORITY
        return _control(lambda: self.director.set_priority(film_id, tenant, priority),
                        "film.priority")

    def pause_film(self, request: pb.PauseFilmRequest, tenant: str) -> pb.Film:
        return convert.info_to_film(self.director.pause_film(_film_id(request.name), tenant))

    def resume_film(self, request: pb.ResumeFilmRequest, tenant: str) -> pb.Film:
        return convert.info_to_film(self.director.resume_film(_film_id(request.name), tenant))

    def retry_film(self, request: pb.RetryFilmRequest, tenant: str) -> pb.Film:
        return convert.info_to_film(self.director.retry_film(_film_id(request.name), tenant))

    def rerender_film(self, request: pb.RerenderFilmRequest, tenant: str) -> pb.Film:
        film_id = _film_id(request.name)
        info = self.director.get_film(film_id, tenant)
        if request.final:
            return self._final_render(info, request, tenant)
        _check_frame_range(info, request.scene_id, request.first_frame, request.last_frame)
        return _control(lambda: self.director.rerender(
            film_id, tenant, request.scene_id, request.first_frame, request.last_frame), "scene_id")

    def _final_render(self, info: FilmInfo, request: pb.RerenderFilmRequest,
                      tenant: str) -> pb.Film:
        """A draft's final render: a new film of the same scenes and seeds, no draft."""
        if request.scene_id or request.first_frame or request.last_frame:
            raise InvalidArgument([FieldError("final", "renders the whole film: give no "
                                                       "scene_id, first_frame or last_frame")])
        if info.film is None or info.film.draft is None:
            raise FailedPrecondition(f"{request.name} is not a draft (it has no `draft`); "
                                     "its render is final already")
        final = final_film(info.film)
        problems = self.checks(final)
        if problems:
            raise InvalidArgument(problems)
        return convert.info_to_film(self.director.create_film(final, tenant=tenant,
                                                              priority=info.priority))

    def list_executions(self, request: pb.ListExecutionsRequest,
                        tenant: str) -> pb.ListExecutionsResponse:
        film_id = _film_id(request.parent, "parent")
        if request.page_size < 0:
            raise InvalidArgument([FieldError("page_size",
                                              f"must be >= 0, got {request.page_size}")])
        size = min(request.page_size or DEFAULT_EXECUTIONS_PAGE_SIZE, MAX_PAGE_SIZE)
        start = page_offset(request.page_token, request.parent, "ListExecutions")
        self.director.get_film(film_id, tenant)  # NOT_FOUND / PERMISSION_DENIED first
        if self.director.store is None:
            raise FailedPrecondition("this server keeps no render log: it runs without a job "
                                     "store (start it with --db)")
        log = self.director.executions(film_id, tenant)
        page = [convert.execution_to_pb(request.parent, start + i + 1, e)
                for i, e in enumerate(log[start:start + size])]
        more = start + size < len(log)
        return pb.ListExecutionsResponse(
            executions=page,
            next_page_token=page_token(request.parent, start + size) if more else "")

    # ---- streaming ------------------------------------------------------------------------

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


def _film_id(name: str, field: str = "name") -> str:
    m = _NAME.match(name)
    if m is None:
        raise InvalidArgument([FieldError(field, f"{name!r} is not a film name (films/{{film}})")])
    return m.group(1)


def _control(call: Callable[[], FilmInfo], field: str) -> pb.Film:
    """A director control; a ValueError from it (a bad argument) names the request field."""
    try:
        return convert.info_to_film(call())
    except ValueError as exc:
        raise InvalidArgument([FieldError(field, str(exc))]) from None


def _update_paths(request: pb.UpdateFilmRequest) -> list[str]:
    """The fields UpdateFilm changes: the mask's paths or, without a mask, the fields set
    in `film` except its name and output-only fields (AIP-134, AIP-203). InvalidArgument
    names every path that is not updatable."""
    explicit = bool(request.update_mask.paths)
    paths = list(request.update_mask.paths) if explicit else [
        f.name for f, _ in request.film.ListFields() if f.name != "name" and not _output_only(f)]
    violations = [FieldError("update_mask" if explicit else f"film.{path}",
                             f"{path!r} {_why_not_updatable(path)}; "
                             f"updatable: {', '.join(UPDATABLE)}")
                  for path in paths if path not in UPDATABLE]
    if violations:
        raise InvalidArgument(violations)
    return paths


def _why_not_updatable(path: str) -> str:
    field = pb.Film.DESCRIPTOR.fields_by_name.get(path)
    if path == "*":
        return "(full replacement) is not supported: the film's spec is immutable"
    if field is None:
        return "is not a field of Film"
    return "is output only" if _output_only(field) else "is immutable"


def _output_only(field) -> bool:
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.OUTPUT_ONLY in behaviors


def _check_frame_range(info: FilmInfo, scene_id: str, first: int, last: int) -> None:
    """RerenderFilm's range: frames first..last (0-based, inclusive) of a scene of the film."""
    scene = next((s for s in info.scenes if s.id == scene_id), None)
    if scene is None:
        scenes = ", ".join(s.id for s in info.scenes)
        raise InvalidArgument([FieldError("scene_id", f"{info.name} has no scene {scene_id!r}; "
                                                      f"its scenes: {scenes}")])
    n, violations = scene.num_frames, []
    if not 0 <= first < n:
        violations.append(FieldError("first_frame", f"scene {scene_id} has frames 0..{n - 1} "
                                                    f"(0-based), not {first}"))
    if not first <= last < n:
        violations.append(FieldError("last_frame", f"must be in [first_frame, {n - 1}] for "
                                                   f"scene {scene_id}, got {last}"))
    if violations:
        raise InvalidArgument(violations)


def _parse_filter(text: str):
    if not text.strip():
        return None
    m = _FILTER.match(text)
    try:
        if m is None:
            raise ValueError("supported filter: `state = <STATE>`, e.g. `state = SUCCEEDED`")
        return convert.state_from_word(m.group(1))
    except ValueError as exc:
        raise InvalidArgument([FieldError("filter", str(exc))]) from None
