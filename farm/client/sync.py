"""The synchronous SDK: Client and FilmHandle.

    with Client("127.0.0.1:50051", token=...) as client:
        film = client.submit("film.yaml")          # validated here, its media uploaded, then
                                                   # CreateFilm
        for event in film.watch(): ...             # pb.WatchFilmResponse, until the end
        for frame in film.frames(): frame.to_array()   # resumes after a dropped connection
        film.download("film.mp4")
        film.pause(); film.resume(); film.set_priority(80)    # controls return the pb.Film
        film.rerender("s020", 32, 63)              # frames 0-based, inclusive
        for line in film.executions(): ...         # the render log (pb.Execution)

Films and events are the API's own messages (reelfarm.v1.Film, WatchFilmResponse), as in
Google's client libraries; frames are `Frame` objects (farm.api.convert).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from farm.api.chunks import Frame, FrameAssembler
from farm.api.protos import pb, pb_grpc
from farm.api.tls import ClientTls
from farm.client import common, media
from farm.client.errors import NotFoundError, UnavailableError, from_rpc_error


class Client:
    def __init__(self, target: str, token: str | None = None, *,
                 timeout: float = common.UNARY_TIMEOUT, options: list | None = None,
                 tls: ClientTls | None = None):
        """`target`: HOST:PORT of a reelfarm server; `token`: the tenant's bearer token."""
        self.target, self.timeout = target, timeout
        self._metadata = common.metadata(token)
        opts = common.CHANNEL_OPTIONS + (options or [])
        self._channel = (grpc.secure_channel(target, tls.credentials(), options=opts) if tls else
                         grpc.insecure_channel(target, options=opts))
        self.stub = pb_grpc.FilmServiceStub(self._channel)

    def wait_until_ready(self, seconds: float) -> None:
        """Wait up to `seconds` for the server to accept connections (one that is still
        starting); UnavailableError naming the address if it does not."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=seconds)
        except grpc.FutureTimeoutError:
            raise UnavailableError(f"no reelfarm server answered at {self.target} within "
                                   f"{seconds:g} s") from None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def call(self, method: str, request):
        """A unary call with this client's token and deadline; raises ApiError."""
        try:
            return getattr(self.stub, method)(request, metadata=self._metadata,
                                              timeout=self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def submit(self, storyboard, *, priority: int | None = None,
               request_id: str | None = None,
               base_dir: str | Path | None = None) -> FilmHandle:
        """Create a film from a storyboard (path, dict or Storyboard), first uploading the
        media files it names that the server does not have yet (paths relative to the
        storyboard file, or for a dict or Storyboard to `base_dir`, default the working
        directory).

        Raises farm.spec.errors.SpecError before any call if the storyboard is invalid
        or names a missing file, InvalidArgumentError if the server rejects it.
        """
        board, base = media.load(storyboard, base_dir)
        names = {f.location: self.upload(f).name for f in media.media_files(board, base)}
        request = common.film_request(media.with_media_names(board, base, names), priority,
                                      request_id)
        film = self.call("CreateFilm", request)
        return FilmHandle(self, film.name, film)

    def upload(self, file: media.MediaFile | str | Path, *,
               rights: pb.Rights | None = None) -> pb.Media:
        """A media file on the server (media/{sha256}): sent only if the server lacks it
        (or lacks the rights statement given)."""
        if not isinstance(file, media.MediaFile):
            file = media.MediaFile(str(Path(file).resolve()), Path(file).name, rights)
        name = f"media/{media.sha256(file.location)}"
        try:
            found = self.call("GetMedia", pb.GetMediaRequest(name=name))
        except NotFoundError:
            found = None
        if not media.needs_upload(found, file):
            return found
        try:  # no deadline: a large file takes what it takes (keepalive guards the link)
            return self.stub.UploadMedia(media.upload_messages(file), metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def list_media(self, page_size: int = 50) -> Iterator[pb.Media]:
        """The caller's media, oldest first."""
        token = ""
        while True:
            page = self.call("ListMedia", pb.ListMediaRequest(page_size=page_size,
                                                              page_token=token))
            yield from page.media
            token = page.next_page_token
            if not token:
                return

    def film(self, name: str) -> FilmHandle:
        return FilmHandle(self, common.film_name(name))

    def get(self, name: str) -> pb.Film:
        return self.call("GetFilm", pb.GetFilmRequest(name=common.film_name(name)))

    def cancel(self, name: str) -> pb.Film:
        return self.call("CancelFilm", pb.CancelFilmRequest(name=common.film_name(name)))

    def list(self, state: str | None = None, page_size: int = 50) -> Iterator[pb.Film]:
        """The tenant's films (optionally in one state, e.g. "RUNNING"), page by page."""
        token = ""
        while True:
            page = self.call("ListFilms", common.list_request(state, page_size, token))
            yield from page.films
            token = page.next_page_token
            if not token:
                return

    # ---- controls: each returns the film as it stands after the call ----------------------

    def pause(self, name: str) -> pb.Film:
        return self.call("PauseFilm", pb.PauseFilmRequest(name=common.film_name(name)))

    def resume(self, name: str) -> pb.Film:
        return self.call("ResumeFilm", pb.ResumeFilmRequest(name=common.film_name(name)))

    def retry(self, name: str) -> pb.Film:
        return self.call("RetryFilm", pb.RetryFilmRequest(name=common.film_name(name)))

    def set_priority(self, name: str, priority: int) -> pb.Film:
        return self.call("UpdateFilm", common.priority_request(name, priority))

    def rerender(self, name: str, scene_id: str, first: int, last: int) -> pb.Film:
        """Render frames first..last (0-based within the scene, inclusive) again."""
        return self.call("RerenderFilm", common.rerender_request(name, scene_id, first, last))

    def rerender_final(self, name: str) -> pb.Film:
        """A draft film's final render: a new film, same scenes and seeds, no draft."""
        return self.call("RerenderFilm", pb.RerenderFilmRequest(name=common.film_name(name),
                                                                final=True))

    def executions(self, name: str, page_size: int = 100) -> Iterator[pb.Execution]:
        """The film's render log, oldest first, page by page."""
        token = ""
        while True:
            page = self.call("ListExecutions", pb.ListExecutionsRequest(
                parent=common.film_name(name), page_size=page_size, page_token=token))
            yield from page.executions
            token = page.next_page_token
            if not token:
                return

    def _stream(self, method: str, request):
        return getattr(self.stub, method)(request, metadata=self._metadata)


class FilmHandle:
    """One film on the server: follow it, fetch its frames and artifacts, control it
    (cancel, pause, resume, priority, retry, re-render) and read its render log."""

    def __init__(self, client: Client, name: str, film: pb.Film | None = None):
        self.client, self.name, self.film = client, name, film

    def __repr__(self) -> str:
        return f"FilmHandle({self.name!r})"

    def get(self) -> pb.Film:
        self.film = self.client.get(self.name)
        return self.film

    def cancel(self) -> pb.Film:
        self.film = self.client.cancel(self.name)
        return self.film

    def pause(self) -> pb.Film:
        self.film = self.client.pause(self.name)
        return self.film

    def resume(self) -> pb.Film:
        self.film = self.client.resume(self.name)
        return self.film

    def retry(self) -> pb.Film:
        self.film = self.client.retry(self.name)
        return self.film

    def set_priority(self, priority: int) -> pb.Film:
        self.film = self.client.set_priority(self.name, priority)
        return self.film

    def rerender(self, scene_id: str, first: int, last: int) -> pb.Film:
        """Render frames first..last (0-based within the scene, inclusive) again: the film
        runs until they are replaced and its mp4 rebuilt (`wait()` for it)."""
        self.film = self.client.rerender(self.name, scene_id, first, last)
        return self.film

    def executions(self, page_size: int = 100) -> Iterator[pb.Execution]:
        return self.client.executions(self.name, page_size)

    def watch(self, after: int = 0) -> Iterator[pb.WatchFilmResponse]:
        """Events after sequence `after` until the film ends; resumes after a dropped
        connection from the last event received."""
        seen = after

        def request() -> pb.WatchFilmRequest:
            return pb.WatchFilmRequest(name=self.name, after_sequence=seen)

        for msg in self._resuming("WatchFilm", request):
            seen = msg.sequence
            yield msg

    def wait(self) -> pb.Film:
        """Block until the film has finished; its final state."""
        for _ in self.watch():
            pass
        return self.get()

    def frames(self, start: int | tuple[str, int] = 0, *, encoding: str = "png",
               jpeg_quality: int = 0) -> Iterator[Frame]:
        """Frames in film order from `start` (a film frame index, or (scene id, frame)),
        following the render; each frame exactly once, across reconnects."""
        pos: int | tuple[str, int] = start
        assembler = FrameAssembler()

        def request() -> pb.StreamFramesRequest:
            assembler.reset()  # a partial frame is resent whole by the resumed stream
            return common.frames_request(self.name, pos, encoding, jpeg_quality)

        for msg in self._resuming("StreamFrames", request):
            frame = assembler.add(msg)
            if frame is not None:
                pos = frame.film_index + 1
                yield frame

    def download(self, path: str | Path, scene_id: str = "",
                 delivery: bool = False) -> list[Path]:
        """The mp4 to `path`, or with `scene_id`, that scene's PNGs into folder `path`;
        `delivery`: the film's delivery conform instead of the render."""
        rendition = pb.RENDITION_DELIVERY if delivery else pb.RENDITION_UNSPECIFIED
        with common.ArtifactWriter(Path(path), folder=bool(scene_id)) as writer:
            for chunk in self._resuming("GetArtifact", lambda: pb.GetArtifactRequest(
                    name=self.name, scene_id=scene_id, rendition=rendition)):
                writer.add(chunk)
        return writer.written

    def _resuming(self, method: str, make_request) -> Iterator:
        """Messages of a server stream, reopened with a fresh request after a drop."""
        failures = 0
        while True:
            call = self.client._stream(method, make_request())
            try:
                for msg in call:
                    failures = 0
                    yield msg
                return
            except grpc.RpcError as err:
                failures += 1
                if not common.resumable(err) or failures > common.MAX_RECONNECTS:
                    raise from_rpc_error(err) from None
            finally:
                call.cancel()  # a consumer that stops early ends the call now
            time.sleep(common.backoff(failures))
