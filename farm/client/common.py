"""What the sync and asyncio clients share: channel settings, retry rules, requests,
and the client-side check of a storyboard (the same farm.spec code as `reelfarm validate`).

Retries, only where safe:
- CreateFilm, GetFilm, ListFilms, UpdateFilm and ListExecutions are retried by gRPC
  itself on UNAVAILABLE (service config below); CreateFilm is safe to retry because every
  submit sends a request_id, UpdateFilm because setting a priority twice is setting it once.
- CancelFilm, PauseFilm, ResumeFilm, RetryFilm and RerenderFilm are not retried (a retry
  of a transition that went through would fail, or render again).
- WatchFilm and StreamFrames are resumed by the handles after a dropped connection,
  from the last event / the frame after the last whole frame received, so nothing is
  lost or repeated.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from farm.api import chunks, convert
from farm.api.protos import pb
from farm.spec.film import resolve_film
from farm.spec.profiles import DEFAULT_FAMILY, PROFILES, profile_for
from farm.spec.storyboard import Storyboard, load_storyboard, parse_storyboard

SERVICE = "reelfarm.v1.FilmService"
# Deadline of unary calls; streams have none (a film renders for as long as it takes;
# keepalive notices a dead connection instead).
UNARY_TIMEOUT = 30.0
# Stream codes after which the handles reconnect and resume.
RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE})
# Ray Serve's gRPC proxy reports a director replica that died mid-stream as INTERNAL with
# the actor's death in the details; Serve starts a new replica, so that is resumable too.
_REPLICA_DIED = ("The actor died", "ActorDiedError", "ActorUnavailableError")


def resumable(err: grpc.RpcError) -> bool:
    """Whether a broken stream is worth resuming (the server went away, not a refusal)."""
    if err.code() in RESUMABLE:
        return True
    details = err.details() or ""
    return err.code() == grpc.StatusCode.INTERNAL and any(m in details for m in _REPLICA_DIED)
# Consecutive failed reconnects before giving up, and the backoff between them.
MAX_RECONNECTS = 6
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

_RETRY = {
    "name": [{"service": SERVICE, "method": m} for m in (
        "CreateFilm", "GetFilm", "ListFilms", "UpdateFilm", "ListExecutions")],
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.2s", "maxBackoff": "3s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
}
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Ping every 30 s (the server accepts down to 10 s), also while a stream is quiet,
    # so a dead server or a dropped connection ends a long stream within ~40 s.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps({"methodConfig": [_RETRY]})),
]


def backoff(attempt: int) -> float:
    """Seconds to wait before reconnect `attempt` (1, 2, ...): 0.2, 0.4, ... capped at 3."""
    return min(0.2 * 2 ** (attempt - 1), 3.0)


# Ray Serve's gRPC proxy routes a call by the `application` metadata key; the
# standalone server ignores it, so every call names the reelfarm app.
APPLICATION = ("application", "reelfarm")


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    auth = (("authorization", f"Bearer {token}"),) if token else ()
    return auth + (APPLICATION,)


def film_name(name_or_id: str) -> str:
    """`films/abc` or `abc` -> `films/abc`."""
    return name_or_id if name_or_id.startswith("films/") else f"films/{name_or_id}"


def film_request(storyboard: str | Path | dict | Storyboard, priority: int | None,
                 request_id: str | None) -> pb.CreateFilmRequest:
    """A checked storyboard as a CreateFilmRequest with a fresh request_id (AIP-155)."""
    return pb.CreateFilmRequest(film=check_storyboard(storyboard, priority),
                                request_id=request_id or str(uuid.uuid4()))


def check_storyboard(storyboard: str | Path | dict | Storyboard,
                     priority: int | None = None) -> pb.Film:
    """Validate before sending; SpecError lists every problem by storyboard path.

    The schema is always checked; the model's rules (frame counts, sizes, guidance) too
    when the storyboard names a built-in model, whose family is known without the server.
    Media inputs must be media names by now (the clients upload files and substitute
    their names first: farm.client.media).
    """
    if isinstance(storyboard, str | Path):
        board = load_storyboard(storyboard)
    elif isinstance(storyboard, Storyboard):
        board = storyboard
    else:
        board = parse_storyboard(storyboard)
    data = board.model_dump(exclude_unset=True)
    family = builtin_family(data.get("model"))
    if family is not None:
        resolve_film(board, profile_for(family), locator=_uploaded)
    return convert.storyboard_to_film(data, priority)


def _uploaded(_field: str, raw: str) -> tuple[str, str | None]:
    if raw.startswith("media/"):
        return raw, None
    return raw, (f"{raw!r} is a file: send storyboards with Client.submit, which uploads the "
                 "files they name (UploadMedia) and names them media/{sha256}")


def builtin_family(model: str | None) -> str | None:
    """Family of a built-in model name (as farm.model.loader resolves it), else None."""
    if model in ("tiny", "toy"):
        return DEFAULT_FAMILY
    if model and model.startswith("tiny-") and model[len("tiny-"):] in PROFILES:
        return model[len("tiny-"):]
    return None


def frames_request(name: str, pos: int | tuple[str, int], encoding: str,
                   jpeg_quality: int) -> pb.StreamFramesRequest:
    if encoding not in chunks.ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(chunks.ENCODINGS)}, "
                         f"got {encoding!r}")
    scene, index = pos if isinstance(pos, tuple) else ("", pos)
    return pb.StreamFramesRequest(name=name, start_scene_id=scene, start_frame=index,
                                  encoding=chunks.ENCODINGS[encoding], jpeg_quality=jpeg_quality)


def priority_request(name: str, priority: int) -> pb.UpdateFilmRequest:
    """UpdateFilm of the priority alone (0 to 100; the server checks the range)."""
    return pb.UpdateFilmRequest(film=pb.Film(name=film_name(name), priority=priority),
                                update_mask=FieldMask(paths=["priority"]))


def rerender_request(name: str, scene_id: str, first: int, last: int) -> pb.RerenderFilmRequest:
    """Frames first..last of a scene: 0-based within the scene, inclusive (as the API)."""
    return pb.RerenderFilmRequest(name=film_name(name), scene_id=scene_id, first_frame=first,
                                  last_frame=last)


def list_request(state: str | None, page_size: int, page_token: str) -> pb.ListFilmsRequest:
    filter_ = f"state = {convert.state_from_word(state).value}" if state else ""
    return pb.ListFilmsRequest(page_size=page_size, page_token=page_token, filter=filter_)


def is_final(film: Any) -> bool:
    return convert.state_word(film.state) in ("SUCCEEDED", "FAILED", "CANCELLED")


# A deliverable's provenance manifest is `<file>.provenance.json` (farm.media.provenance).
SIDECAR = ".provenance.json"


class ArtifactWriter:
    """Writes GetArtifact chunks to `path` (or to files under folder `path`) as they
    arrive; a chunk at offset 0 (re)starts its file, so a resumed stream that resends a
    file from the beginning overwrites the partial copy."""

    def __init__(self, path: Path, folder: bool):
        self.path, self.folder = path, folder
        self.written: list[Path] = []
        self._out = None
        self._current: Path | None = None

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._out is not None:
            self._out.close()

    def add(self, chunk: pb.GetArtifactResponse) -> None:
        target = self.path / chunk.file_name if self.folder else self.path
        if not self.folder and chunk.file_name.endswith(SIDECAR):  # the movie's manifest,
            target = self.path.with_name(self.path.name + SIDECAR)  # beside it as saved
        if chunk.offset == 0:
            if self._out is not None:
                self._out.close()
            target.parent.mkdir(parents=True, exist_ok=True)
            self._out, self._current = target.open("wb"), target
            if target not in self.written:
                self.written.append(target)
        if target != self._current or self._out is None:
            raise ValueError(f"chunk of {chunk.file_name} at offset {chunk.offset} out of order")
        self._out.write(chunk.data)
