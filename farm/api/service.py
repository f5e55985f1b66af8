"""The FilmService RPCs as plain methods: (request, tenant) -> response, or a generator of
responses for streaming RPCs. They raise domain errors (farm.director.errors,
farm.api.errors); an adapter maps those to gRPC statuses with farm.api.status.

No transport here: farm/api/server.py adapts this to grpc.server, and a Ray Serve
ingress (methods named like the RPCs) can call the same methods. The streaming RPCs are
farm.api.streams (StreamApi), the media RPCs farm.api.media (MediaApi).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from google.api import field_behavior_pb2

from farm.api import convert
from farm.api.errors import InvalidArgument, ModelNotServed
from farm.api.media import MediaApi
from farm.api.names import film_id as _film_id
from farm.api.paging import page_offset, page_token
from farm.api.protos import pb
from farm.api.streams import StreamApi
from farm.director.director import Director
from farm.director.errors import FailedPrecondition
from farm.director.records import FilmInfo
from farm.media.library import MediaLibrary, with_media_names
from farm.media.probe import check_media
from farm.sched.fairness import priority_problem
from farm.spec.errors import FieldError, SpecError
from farm.spec.film import Film, final_film, resolve_film
from farm.spec.profiles import profile_for
from farm.spec.storyboard import parse_storyboard

_FILTER = re.compile(r'^\s*state\s*=\s*"?([A-Za-z_]+)"?\s*$')
DEFAULT_PAGE_SIZE = 50
DEFAULT_EXECUTIONS_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_REQUEST_ID = 128
DEFAULT_PRIORITY = 50
# UpdateFilm: the film fields that may change after creation (the spec is immutable).
UPDATABLE = ("priority",)


class FilmApi(MediaApi, StreamApi):
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
        self.director, self.models = director, dict(models)
        self.default_model = next(iter(self.models))
        self.checks = checks or (lambda film: [])
        self._init_streams(poll_seconds, max_streams_per_tenant)

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
        start = page_offset(request.page_token, "films", "ListFilms")
        infos, after = self.director.list_films(tenant, state, size, start)
        token = page_token("films", after) if after is not None else ""
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
