"""The asyncio SDK (grpc.aio): AsyncClient and AsyncFilmHandle, the same API as
farm.client.sync with `await` / `async for`.

    async with AsyncClient("127.0.0.1:50051", token=...) as client:
        film = await client.submit("film.yaml")
        async for frame in film.frames(): ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc

from farm.api.chunks import Frame, FrameAssembler
from farm.api.protos import pb, pb_grpc
from farm.api.tls import ClientTls
from farm.client import common, media
from farm.client.errors import NotFoundError, from_rpc_error


class AsyncClient:
    def __init__(self, target: str, token: str | None = None, *,
                 timeout: float = common.UNARY_TIMEOUT, options: list | None = None,
                 tls: ClientTls | None = None):
        self.target, self.timeout = target, timeout
        self._metadata = common.metadata(token)
        opts = common.CHANNEL_OPTIONS + (options or [])
        self._channel = (grpc.aio.secure_channel(target, tls.credentials(), options=opts)
                         if tls else grpc.aio.insecure_channel(target, options=opts))
        self.stub = pb_grpc.FilmServiceStub(self._channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def call(self, method: str, request):
        try:
            return await getattr(self.stub, method)(request, metadata=self._metadata,
                                                    timeout=self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    async def submit(self, storyboard, *, priority: int | None = None,
                     request_id: str | None = None,
                     base_dir: str | Path | None = None) -> AsyncFilmHandle:
        board, base = media.load(storyboard, base_dir)
        names = {f.location: (await self.upload(f)).name
                 for f in media.media_files(board, base)}
        request = common.film_request(media.with_media_names(board, base, names), priority,
                                      request_id)
        film = await self.call("CreateFilm", request)
        return AsyncFilmHandle(self, film.name, film)

    async def upload(self, file: media.MediaFile | str | Path, *,
                     rights: pb.Rights | None = None) -> pb.Media:
        if not isinstance(file, media.MediaFile):
            file = media.MediaFile(str(Path(file).resolve()), Path(file).name, rights)
        digest = await asyncio.to_thread(media.sha256, file.location)
        try:
            found = await self.call("GetMedia", pb.GetMediaRequest(name=f"media/{digest}"))
        except NotFoundError:
            found = None
        if not media.needs_upload(found, file):
            return found
        try:
            return await self.stub.UploadMedia(_in_thread(media.upload_messages(file)),
                                               metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    async def list_media(self, page_size: int = 50) -> AsyncIterator[pb.Media]:
        token = ""
        while True:
            page = await self.call("ListMedia", pb.ListMediaRequest(page_size=page_size,
                                                                    page_token=token))
            for item in page.media:
                yield item
            token = page.next_page_token
            if not token:
                return

    def film(self, name: str) -> AsyncFilmHandle:
        return AsyncFilmHandle(self, common.film_name(name))

    async def get(self, name: str) -> pb.Film:
        return await self.call("GetFilm", pb.GetFilmRequest(name=common.film_name(name)))

    async def cancel(self, name: str) -> pb.Film:
        return await self.call("CancelFilm", pb.CancelFilmRequest(name=common.film_name(name)))

    async def list(self, state: str | None = None, page_size: int = 50) -> AsyncIterator[pb.Film]:
        token = ""
        while True:
            page = await self.call("ListFilms", common.list_request(state, page_size, token))
            for film in page.films:
                yield film
            token = page.next_page_token
            if not token:
                return

    # ---- controls: each returns the film as it stands after the call ----------------------

    async def pause(self, name: str) -> pb.Film:
        return await self.call("PauseFilm", pb.PauseFilmRequest(name=common.film_name(name)))

    async def resume(self, name: str) -> pb.Film:
        return await self.call("ResumeFilm", pb.ResumeFilmRequest(name=common.film_name(name)))

    async def retry(self, name: str) -> pb.Film:
        return await self.call("RetryFilm", pb.RetryFilmRequest(name=common.film_name(name)))

    async def set_priority(self, name: str, priority: int) -> pb.Film:
        return await self.call("UpdateFilm", common.priority_request(name, priority))

    async def rerender(self, name: str, scene_id: str, first: int, last: int) -> pb.Film:
        """Render frames first..last (0-based within the scene, inclusive) again."""
        return await self.call("RerenderFilm", common.rerender_request(name, scene_id, first, last))

    async def rerender_final(self, name: str) -> pb.Film:
        """A draft film's final render: a new film, same scenes and seeds, no draft."""
        return await self.call("RerenderFilm", pb.RerenderFilmRequest(
            name=common.film_name(name), final=True))

    async def executions(self, name: str, page_size: int = 100) -> AsyncIterator[pb.Execution]:
        token = ""
        while True:
            page = await self.call("ListExecutions", pb.ListExecutionsRequest(
                parent=common.film_name(name), page_size=page_size, page_token=token))
            for execution in page.executions:
                yield execution
            token = page.next_page_token
            if not token:
                return

    def _stream(self, method: str, request):
        return getattr(self.stub, method)(request, metadata=self._metadata)


class AsyncFilmHandle:
    def __init__(self, client: AsyncClient, name: str, film: pb.Film | None = None):
        self.client, self.name, self.film = client, name, film

    def __repr__(self) -> str:
        return f"AsyncFilmHandle({self.name!r})"

    async def get(self) -> pb.Film:
        self.film = await self.client.get(self.name)
        return self.film

    async def cancel(self) -> pb.Film:
        self.film = await self.client.cancel(self.name)
        return self.film

    async def pause(self) -> pb.Film:
        self.film = await self.client.pause(self.name)
        return self.film

    async def resume(self) -> pb.Film:
        self.film = await self.client.resume(self.name)
        return self.film

    async def retry(self) -> pb.Film:
        self.film = await self.client.retry(self.name)
        return self.film

    async def set_priority(self, priority: int) -> pb.Film:
        self.film = await self.client.set_priority(self.name, priority)
        return self.film

    async def rerender(self, scene_id: str, first: int, last: int) -> pb.Film:
        self.film = await self.client.rerender(self.name, scene_id, first, last)
        return self.film

    def executions(self, page_size: int = 100) -> AsyncIterator[pb.Execution]:
        return self.client.executions(self.name, page_size)

    async def watch(self, after: int = 0) -> AsyncIterator[pb.WatchFilmResponse]:
        seen = after

        def request() -> pb.WatchFilmRequest:
            return pb.WatchFilmRequest(name=self.name, after_sequence=seen)

        async for msg in self._resuming("WatchFilm", request):
            seen = msg.sequence
            yield msg

    async def wait(self) -> pb.Film:
        async for _ in self.watch():
            pass
        return await self.get()

    async def frames(self, start: int | tuple[str, int] = 0, *, encoding: str = "png",
                     jpeg_quality: int = 0) -> AsyncIterator[Frame]:
        pos: int | tuple[str, int] = start
        assembler = FrameAssembler()

        def request() -> pb.StreamFramesRequest:
            assembler.reset()
            return common.frames_request(self.name, pos, encoding, jpeg_quality)

        async for msg in self._resuming("StreamFrames", request):
            frame = assembler.add(msg)
            if frame is not None:
                pos = frame.film_index + 1
                yield frame

    async def download(self, path: str | Path, scene_id: str = "",
                             delivery: bool = False) -> list[Path]:
        """The mp4 to `path`, or with `scene_id`, that scene's PNGs into folder `path`;
        `delivery`: the film's delivery conform instead of the render."""
        rendition = pb.RENDITION_DELIVERY if delivery else pb.RENDITION_UNSPECIFIED
        # Chunks are at most 1 MiB: writing them inline blocks the loop only briefly.
        with common.ArtifactWriter(Path(path), folder=bool(scene_id)) as writer:
            async for chunk in self._resuming("GetArtifact", lambda: pb.GetArtifactRequest(
                    name=self.name, scene_id=scene_id, rendition=rendition)):
                writer.add(chunk)
        return writer.written

    async def _resuming(self, method: str, make_request) -> AsyncIterator:
        failures = 0
        while True:
            call = self.client._stream(method, make_request())
            try:
                async for msg in call:
                    failures = 0
                    yield msg
                return
            except grpc.RpcError as err:
                failures += 1
                if not common.resumable(err) or failures > common.MAX_RECONNECTS:
                    raise from_rpc_error(err) from None
            finally:
                call.cancel()
            await asyncio.sleep(common.backoff(failures))


async def _in_thread(messages: Iterator) -> AsyncIterator:
    """A file's upload messages, read in a worker thread (file reads never block the loop)."""
    while (message := await asyncio.to_thread(next, messages, None)) is not None:
        yield message
