"""The web monitor's backend: every read and control goes through FilmApi (the gRPC API's
logic) with the caller's tenant, so names, tenancy, argument checks and error messages
are the API's. Where the monitor needs more than an RPC returns (phase durations for the
Gantt chart, the plan, the fleet), it first validates the film with GetFilm and then asks
the Director for it, through the methods FilmApi itself calls.

Blocking: control calls may wait (CancelFilm up to 30 s), and the streams follow a film;
the ASGI app runs all of these in worker threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf import field_mask_pb2

from farm.api import convert
from farm.api.auth import Authenticator
from farm.api.errors import InvalidArgument
from farm.api.protos import pb
from farm.api.service import FilmApi
from farm.director.errors import FailedPrecondition
from farm.media.provenance import find_manifest, has_label
from farm.plan.film import plan_film
from farm.spec.errors import FieldError
from farm.web import views
from farm.web.tracker import Tracker

# Films read per ListFilms page (the monitor shows them all).
PAGE = 1000
CONTROLS = ("cancel", "pause", "resume", "retry", "rerender")


class Monitor:
    def __init__(self, api: FilmApi, auth: Authenticator, clock: Callable[[], float] = time.time):
        self.api, self.auth, self.clock = api, auth, clock
        self.director = api.director
        self.tracker = Tracker(self.director)

    # ---- who is asking ---------------------------------------------------------------

    def tenant(self, authorization: str | None) -> str:
        """The caller's tenant from its Authorization header (Unauthenticated if none or
        unknown, unless the server runs open)."""
        return self.auth.tenant([("authorization", authorization)] if authorization else [])

    def whoami(self, tenant: str) -> dict[str, Any]:
        return {"tenant": tenant, "open": self.auth.is_open, "models": list(self.api.models)}

    # ---- films -----------------------------------------------------------------------

    def films(self, tenant: str) -> list[dict[str, Any]]:
        return [self._film_json(f, tenant) for f in self._all_films(tenant)]

    def _all_films(self, tenant: str) -> list[pb.Film]:
        out, token = [], ""
        while True:
            page = self.api.list_films(pb.ListFilmsRequest(page_size=PAGE, page_token=token),
                                       tenant)
            out += page.films
            token = page.next_page_token
            if not token:
                return out

    def film(self, tenant: str, film_id: str) -> dict[str, Any]:
        return self._film_json(self._get(tenant, film_id), tenant)

    def _get(self, tenant: str, film_id: str) -> pb.Film:
        return self.api.get_film(pb.GetFilmRequest(name=f"films/{film_id}"), tenant)

    def _film_json(self, film: pb.Film, tenant: str) -> dict[str, Any]:
        eta = self.tracker.eta(film.name.split("/", 1)[1], tenant, convert.state_word(film.state),
                               film.phases_total - film.phases_done,
                               film.frames_total - film.frames_done, self.clock())
        return views.film_json(film, eta)

    def plan(self, tenant: str, film_id: str) -> dict[str, Any]:
        self._get(tenant, film_id)
        info = self.director.get_film(film_id, tenant)
        return views.plan_json(plan_film(info.film))

    def events(self, tenant: str, film_id: str, after: int,
               alive: Callable[[], bool]) -> Iterator[dict[str, Any] | None]:
        """The film's events after `after` as JSON, then live until the film ends; None
        every `poll_seconds` without one (a heartbeat). Validates before returning."""
        self._get(tenant, film_id)
        return self._follow(tenant, film_id, after, alive)

    def _follow(self, tenant: str, film_id: str, after: int,
                alive: Callable[[], bool]) -> Iterator[dict[str, Any] | None]:
        while alive():
            try:
                for e in self.director.watch(film_id, tenant, after, timeout=self.api.poll_seconds):
                    yield views.event_json(e)
                    after = e.seq
                return
            except TimeoutError:
                yield None

    def frames(self, tenant: str, film_id: str, start: int,
               alive: Callable[[], bool]) -> Iterator[dict[str, Any]]:
        """Whole frames (JPEG) from film frame `start` on, through StreamFrames."""
        self._get(tenant, film_id)
        request = pb.StreamFramesRequest(name=f"films/{film_id}", start_frame=start,
                                         encoding=pb.FRAME_ENCODING_JPEG, jpeg_quality=85)
        return _whole_frames(self.api.stream_frames(request, tenant, alive))

    def executions(self, tenant: str, film_id: str) -> list[dict[str, Any]]:
        out, token = [], ""
        while True:
            page = self.api.list_executions(pb.ListExecutionsRequest(
                parent=f"films/{film_id}", page_size=PAGE, page_token=token), tenant)
            out += [views.execution_json(e) for e in page.executions]
            token = page.next_page_token
            if not token:
                return out

    def mp4(self, tenant: str, film_id: str) -> Iterator[bytes]:
        """The mp4's bytes through GetArtifact (raises before the first chunk if there is
        none); its manifest, which GetArtifact sends next, is the deliverables view's."""
        chunks = (c for c in self.api.get_artifact(pb.GetArtifactRequest(name=f"films/{film_id}"),
                                                   tenant) if c.file_name == "film.mp4")
        first = next(chunks)
        return _data(first, chunks)

    def deliverables(self, tenant: str, film_id: str) -> dict[str, Any]:
        """What exists of the film's deliverables: the mp4 once SUCCEEDED (with its
        embedded AI-generated label), and provenance manifests where present."""
        film = self._get(tenant, film_id)
        try:
            mp4 = self.director.mp4_path(film_id, tenant)
        except FailedPrecondition as exc:
            return {"mp4": None, "note": str(exc), "manifests": []}
        manifests = []
        scenes = sorted(p for p in (mp4.parent / "frames").glob("*") if p.is_dir())
        for path in [mp4, *scenes]:
            manifest, _ = find_manifest(path)
            if manifest is not None:
                manifests.append({"deliverable": path.relative_to(mp4.parent).as_posix(),
                                  "manifest": manifest.read_text(encoding="utf-8")})
        note = "" if manifests else ("no provenance manifest: served films carry the "
                                     "AI-generated label inside the mp4 and PNGs; "
                                     "`reelfarm render` writes manifests")
        return {"mp4": {"file": "film.mp4", "bytes": mp4.stat().st_size,
                        "labelled": has_label(mp4), "frames": film.frames_total,
                        "url": f"api/v1/films/{film_id}/mp4"},
                "note": note, "manifests": manifests}

    # ---- controls --------------------------------------------------------------------

    def control(self, tenant: str, film_id: str, verb: str, body: dict[str, Any]) -> dict[str, Any]:
        name = f"films/{film_id}"
        if verb == "cancel":
            film = self.api.cancel_film(pb.CancelFilmRequest(name=name), tenant)
        elif verb == "pause":
            film = self.api.pause_film(pb.PauseFilmRequest(name=name), tenant)
        elif verb == "resume":
            film = self.api.resume_film(pb.ResumeFilmRequest(name=name), tenant)
        elif verb == "retry":
            film = self.api.retry_film(pb.RetryFilmRequest(name=name), tenant)
        elif verb == "rerender":
            film = self.api.rerender_film(pb.RerenderFilmRequest(
                name=name, scene_id=_field(body, "scene_id", str),
                first_frame=_field(body, "first_frame", int),
                last_frame=_field(body, "last_frame", int)), tenant)
        else:
            raise InvalidArgument([FieldError("method", f"unknown method {verb!r}; one of "
                                                        f"{', '.join(CONTROLS)}")])
        return self._film_json(film, tenant)

    def set_priority(self, tenant: str, film_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """UpdateFilm with update_mask `priority` (the only mutable field)."""
        priority = _field(body, "priority", int, "film.priority")
        request = pb.UpdateFilmRequest(film=pb.Film(name=f"films/{film_id}", priority=priority),
                                       update_mask=field_mask_pb2.FieldMask(paths=["priority"]))
        return self._film_json(self.api.update_film(request, tenant), tenant)

    # ---- the fleet -------------------------------------------------------------------

    def pools(self, tenant: str) -> dict[str, Any]:
        fleet = self.director.fleet
        excluded, failures = [], []
        for film in self._all_films(tenant):
            fid = film.name.split("/", 1)[1]
            if fleet.excluded.get(fid):
                excluded.append({"film": film.name, "title": film.title,
                                 "worker_ids": list(fleet.excluded[fid])})
            failures += [{**f, "film": film.name, "title": film.title}
                         for f in self.tracker.failures(fid, tenant)]
        failures.sort(key=lambda f: -f["time"])
        return views.fleet_json(fleet, excluded, failures[:20])


def _field(body: dict[str, Any], key: str, kind: type, path: str | None = None) -> Any:
    """A field of a JSON body, of the type its proto field has (HTTP/JSON transcoding: the
    API's own rules about the value come after, from FilmApi)."""
    value = body.get(key)
    wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
    if wrong or (kind is int and not -2**31 <= value < 2**31):
        what = "an int32" if kind is int else "a string"
        raise InvalidArgument([FieldError(path or key, f"must be {what}, got {value!r}")])
    return value


def _data(first: pb.GetArtifactResponse, rest: Iterator[pb.GetArtifactResponse]) -> Iterator[bytes]:
    yield first.data
    for chunk in rest:
        yield chunk.data


def _whole_frames(messages: Iterator[pb.StreamFramesResponse]) -> Iterator[dict[str, Any]]:
    """StreamFrames' chunks (a frame over 1 MiB comes in several) -> one dict per frame."""
    import base64

    parts: list[bytes] = []
    for m in messages:
        parts.append(m.data)
        if m.offset + len(m.data) < m.size_bytes:
            continue
        data, parts = b"".join(parts), []
        yield {"scene_id": m.scene_id, "index": m.frame_index, "film_index": m.film_frame_index,
               "width": m.width, "height": m.height, "mime": "image/jpeg",
               "data": base64.b64encode(data).decode("ascii")}
