"""The media RPCs (UploadMedia, GetMedia, ListMedia) and how a film's scenes name media.

    UploadMedia:  [Media (display_name, rights)] [data <= 1 MiB] [data] ... ──> Media
                  first message the metadata, then the bytes; farm.media.library stores
                  them once by sha256 and records them for the caller's tenant.
    CreateFilm:   scenes[i].image = "media/<sha256>" ──media_locator──> the blob's location
                  (only the caller's media; of the kind the field takes; with a rights
                  statement where the server requires one), then every input is decoded
                  once (farm.media.probe) before the film is accepted.

FilmApi inherits these methods; FilmApi.__init__ sets `media` and `require_rights`.
"""

from __future__ import annotations

from collections.abc import Iterator

from farm.api import chunks, convert
from farm.api.errors import InvalidArgument, MediaNotFound
from farm.api.paging import page_offset, page_token
from farm.api.protos import pb
from farm.director.errors import FailedPrecondition
from farm.media.library import MediaInfo, MediaLibrary, MediaRejected, Rights, parse_name
from farm.spec.errors import FieldError
from farm.spec.inputs import FIELD_KINDS, PERSONAL, Locator

MAX_CHUNK_BYTES = chunks.CHUNK_BYTES
MAX_DISPLAY_NAME = 256
MAX_RIGHTS_TEXT = 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class MediaApi:
    media: MediaLibrary | None
    require_rights: bool

    def _library(self) -> MediaLibrary:
        if self.media is None:
            raise FailedPrecondition("this server keeps no media (it was started without an "
                                     "artifact store)")
        return self.media

    def upload_media(self, requests: Iterator[pb.UploadMediaRequest], tenant: str) -> pb.Media:
        library = self._library()
        first = next(requests, None)
        if first is None or first.WhichOneof("payload") != "media":
            raise InvalidArgument([FieldError("media", "the first message of an upload carries "
                                                       "the media's metadata (display_name, "
                                                       "rights); the bytes follow in `data`")])
        display_name, rights = _upload_metadata(first.media)
        try:
            info = library.put(tenant, _chunks(requests), display_name, rights)
        except MediaRejected as exc:
            raise InvalidArgument([FieldError("data", str(exc))]) from None
        return convert.media_to_pb(info)

    def get_media(self, request: pb.GetMediaRequest, tenant: str) -> pb.Media:
        return convert.media_to_pb(self._media_info(request.name, "name", tenant))

    def list_media(self, request: pb.ListMediaRequest, tenant: str) -> pb.ListMediaResponse:
        if request.page_size < 0:
            raise InvalidArgument([FieldError("page_size",
                                              f"must be >= 0, got {request.page_size}")])
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        start = page_offset(request.page_token, "media", "ListMedia")
        infos = self._library().list(tenant)
        page = infos[start:start + size]
        token = page_token("media", start + size) if start + size < len(infos) else ""
        return pb.ListMediaResponse(media=[convert.media_to_pb(i) for i in page],
                                    next_page_token=token)

    def _media_info(self, name: str, field: str, tenant: str) -> MediaInfo:
        sha = parse_name(name)
        if sha is None:
            raise InvalidArgument([FieldError(field, f"{name!r} is not a media name "
                                                     "(media/{sha256}, lowercase hex)")])
        info = self._library().get(tenant, sha)
        if info is None:
            raise MediaNotFound(f"no media {name}")
        return info

    def media_locator(self, tenant: str) -> Locator:
        """Where workers read each media input a film of `tenant` names, and why not."""
        def locate(field: str, raw: str) -> tuple[str, str | None]:
            sha = parse_name(raw)
            if sha is None:
                return raw, (f"{raw!r} is not a media name: over the API a scene names media "
                             "it uploaded, media/{sha256} (UploadMedia; `reelfarm submit` and "
                             "the SDK upload the files a storyboard names)")
            info = self.media.get(tenant, sha) if self.media is not None else None
            if info is None:
                return raw, f"no media {raw}: upload it first (UploadMedia)"
            return self.media.location(sha), _media_problem(field, info, self.require_rights)
        return locate


def _media_problem(field: str, info: MediaInfo, require_rights: bool) -> str | None:
    kinds = FIELD_KINDS[field]
    what = f"{info.name} ({info.display_name or info.mime_type})"
    if info.kind not in kinds:
        return f"{what} is {_a(info.kind)}; `{field}` takes {' or '.join(map(_a, kinds))}"
    if require_rights and field in PERSONAL and info.rights is None:
        return (f"{what} has no rights statement, and this server requires one for every "
                "photo, video and voice: upload it again with rights (holder and reference)")
    return None


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _upload_metadata(media: pb.Media) -> tuple[str, Rights | None]:
    errors = []
    if len(media.display_name) > MAX_DISPLAY_NAME:
        errors.append(FieldError("media.display_name", f"at most {MAX_DISPLAY_NAME} characters"))
    rights = None
    if media.HasField("rights"):
        for key in ("holder", "reference"):
            value = getattr(media.rights, key)
            if not value.strip():
                errors.append(FieldError(f"media.rights.{key}", "required in a rights statement"))
            elif len(value) > MAX_RIGHTS_TEXT:
                errors.append(FieldError(f"media.rights.{key}",
                                         f"at most {MAX_RIGHTS_TEXT} characters"))
        rights = Rights(media.rights.holder, media.rights.reference)
    if errors:
        raise InvalidArgument(errors)
    return media.display_name, rights


def _chunks(requests: Iterator[pb.UploadMediaRequest]) -> Iterator[bytes]:
    for i, request in enumerate(requests, start=1):
        if request.WhichOneof("payload") != "data":
            raise MediaRejected(f"message {i} of the upload is not `data`: only the first "
                                "message carries metadata")
        if len(request.data) > MAX_CHUNK_BYTES:
            raise MediaRejected(f"message {i} carries {len(request.data)} bytes; chunks are "
                                f"at most {MAX_CHUNK_BYTES} bytes (1 MiB)")
        yield request.data
