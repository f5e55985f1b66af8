"""The FilmService RPCs as plain methods: (request, tenant) -> response, or a generator of
responses for streaming RPCs. They raise domain errors (farm.director.errors,
farm.api.errors); an adapter maps those to gRPC statuses with farm.api.status.

No transport here: farm/api/server.py adapts this to grpc.server, and a Ray Serve
ingress (methods named like the RPCs) can call the same methods. Streaming methods take
`alive`, a callable the adapter supplies (the call is still wanted), checked at least
every `poll_seconds` while waiting for the film, so a dropped client frees its thread.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Mapping

from farm.api import convert
from farm.api.errors import InvalidArgument, ModelNotServed
from farm.api.protos import pb
from farm.director.director import Director
from farm.director.errors import FailedPrecondition
from farm.director.records import FilmInfo
from farm.spec.errors import FieldError, SpecError
from farm.spec.film import Film, resolve_film
from farm.spec.profiles import profile_for
from farm.spec.storyboard import parse_storyboard
from farm.stitch.stream import StreamClosed

_NAME = re.compile(r"^films/([a-z0-9][a-z0-9_-]{0,63})$")
_FILTER = re.compile(r'^\s*state\s*=\s*"?([A-Za-z_]+)"?\s*$')
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_REQUEST_ID = 128


def _always() -> bool:
    return True


class FilmApi:
    def __init__(self, director: Director, models: Mapping[str, str], *, poll_seconds: float = 1.0):
        """`models`: the served model names (as films name them) -> model family; the
        first one is the default for films that name none."""
        if not models:
            raise ValueError("a server must serve at least one model")
        self.director, self.models, self.poll_seconds = director, dict(models), poll_seconds
        self.default_model = next(iter(self.models))

    # ---- unary ----------------------------------------------------------------------------

    def create_film(self, request: pb.CreateFilmRequest, tenant: str) -> pb.Film:
        film, priority = self._checked_film(request)
        info = self.director.create_film(film, tenant=tenant, request_id=request.request_id,
                                         priority=priority)
        return convert.info_to_film(info)

    def _checked_film(self, request: pb.CreateFilmRequest) -> tuple[Film, int]:
        """The requested film, resolved for its model; every problem in one InvalidArgument
        (the model not served, a FAILED_PRECONDITION, only once the request is well formed)."""
        if not request.HasField("film"):
            raise InvalidArgument([FieldError("film", "required field is missing")])
        spec = request.film
        violations = []
        if len(request.request_id) > MAX_REQUEST_ID:
            violations.append(FieldError("request_id", f"at most {MAX_REQUEST_ID} characters"))
        priority = spec.priority if spec.HasField("priority") else 50
        if not 0 <= priority <= 100:
            violations.append(FieldError("film.priority", f"must be in [0, 100], got {priority}"))
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
                film = resolve_film(board, profile_for(self.models[model]), model=model)
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
            raise InvalidArgument([FieldError("page_size", f"must be >= 0, got {request.page_size}")])
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

    # ---- streaming ------------------------------------------------------------------------

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

    def stream_frames(self, request: pb.StreamFramesRequest, tenant: str,
                      alive: Callable[[], bool] = _always) -> Iterator[pb.StreamFramesResponse]:
        film_id = _film_id(request.name)
        info = self.director.get_film(film_id, tenant)
        pos, encoding, quality = self._frames_args(request, info)
        size = (info.film.width, info.film.height)
        while alive():
            try:
                for frame in self.director.frames(film_id, tenant, index=pos, timeout=self.poll_seconds):
                    yield from convert.frame_messages(frame, size, encoding, quality)
                    pos = frame.film_index + 1
                return
            except TimeoutError:
                continue
            except StreamClosed as exc:
                raise FailedPrecondition(f"films/{film_id} delivers no more frames: {exc}") from None

    def get_artifact(self, request: pb.GetArtifactRequest,
                     tenant: str) -> Iterator[pb.GetArtifactResponse]:
        film_id = _film_id(request.name)
        if not request.scene_id:
            yield from convert.artifact_chunks(self.director.mp4_path(film_id, tenant), "film.mp4",
                                               "video/mp4")
            return
        info = self.director.get_film(film_id, tenant)
        scene = next((s for s in info.scenes if s.id == request.scene_id), None)
        if scene is None:
            raise InvalidArgument([FieldError("scene_id", f"films/{film_id} has no scene "
                                              f"{request.scene_id!r}")])
        if scene.frames_done < scene.num_frames:
            raise FailedPrecondition(f"scene {scene.id} has {scene.frames_done} of "
                                     f"{scene.num_frames} frames; its PNGs exist once all are rendered")
        frames = self.director.frames(film_id, tenant, scene.id, 0, timeout=self.poll_seconds)
        for frame in itertools.islice(frames, scene.num_frames):
            yield from convert.artifact_chunks(frame.path, f"{scene.id}/{frame.path.name}", "image/png")

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
        return 0, FieldError("start_frame", f"the film has frames 0..{info.frames_total - 1}, not {index}")
    offset = 0
    for s in info.scenes:
        if s.id == scene_id:
            if 0 <= index < s.num_frames:
                return offset + index, None
            return 0, FieldError("start_frame", f"scene {scene_id} has frames 0..{s.num_frames - 1}, "
                                                f"not {index}")
        offset += s.num_frames
    return 0, FieldError("start_scene_id", f"the film has no scene {scene_id!r}")


def _film_id(name: str) -> str:
    m = _NAME.match(name)
    if m is None:
        raise InvalidArgument([FieldError("name", f"{name!r} is not a film name (films/{{film}})")])
    return m.group(1)


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
