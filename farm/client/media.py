"""A storyboard's media files on their way to the server (the sync and asyncio clients).

    film.yaml ──media_files──> [MediaFile(location, display name, rights)]   each file once
              ──sha256 ── GetMedia(media/<sha256>) ── found: nothing to send
                                                   └─ NOT_FOUND: UploadMedia(upload_messages)
              ──with_media_names──> the storyboard with every file replaced by its media
                                    name (references by id expanded), then CreateFilm

Files are found as `reelfarm render` finds them: relative to the storyboard's folder (the
working directory for a dict or a Storyboard), or URLs read through fsspec.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.api.chunks import CHUNK_BYTES
from farm.api.protos import pb
from farm.spec.adapters import lora_location, lora_names, rename_loras
from farm.spec.errors import FieldError, SpecError
from farm.spec.inputs import is_url, locate
from farm.spec.storyboard import (
    Storyboard,
    is_reference_id,
    load_storyboard,
    media_entries,
    parse_storyboard,
)
from farm.spec.timeline import is_timeline, load_timeline


@dataclass(frozen=True, slots=True)
class MediaFile:
    location: str  # an absolute path or a URL
    display_name: str
    rights: pb.Rights | None = None


def load(storyboard: str | Path | dict | Storyboard,
         base_dir: str | Path | None = None) -> tuple[Storyboard, Path]:
    """The parsed storyboard and the folder its relative media paths start from (a dict's
    or a Storyboard's: `base_dir`, default the working directory). A
    timeline file (.otio, .otioz, .otiod, .edl) gives its clips as scenes, with the media
    their metadata names (gaps are the local renderer's: the API renders the scenes)."""
    if isinstance(storyboard, str | Path):
        if is_timeline(storyboard):
            board = load_timeline(storyboard, {}).board
        else:
            board = load_storyboard(storyboard)
        return board, Path(storyboard).resolve().parent
    board = storyboard if isinstance(storyboard, Storyboard) else parse_storyboard(storyboard)
    return board, Path(base_dir or Path.cwd()).resolve()


def media_files(board: Storyboard, base_dir: Path) -> list[MediaFile]:
    """Every media file the storyboard names, once each; SpecError names each missing one
    by its storyboard field."""
    rights = {r.media: pb.Rights(holder=r.holder, reference=r.reference) for r in board.rights}
    files, errors = {}, []
    for raw in media_entries(board):
        location, problem = locate(raw, base_dir)
        if problem:
            errors += [FieldError(path, problem) for path in _fields_naming(board, raw)]
        elif location not in files:
            name = raw.rstrip("/").rsplit("/", 1)[-1]
            files[location] = MediaFile(location, name, rights.get(raw))
    for raw in lora_names(board):  # LoRA adapters: a file, or a folder diffusers saved
        location, problem = _lora_at(raw, base_dir)
        if problem:
            errors.append(FieldError("loras", f"{raw}: {problem}"))
        elif location not in files:
            files[location] = MediaFile(location, raw.rstrip("/").rsplit("/", 1)[-1], None)
    if errors:
        raise SpecError(errors)
    return list(files.values())


def _fields_naming(board: Storyboard, raw: str) -> list[str]:
    paths = [f"references[{i}].image" for i, r in enumerate(board.references) if r.image == raw]
    paths += [f"characters[{i}].references[{j}]" for i, c in enumerate(board.characters)
              for j, r in enumerate(c.references) if r == raw]
    for i, scene in enumerate(board.scenes):
        data = scene.model_dump(exclude_none=True)
        paths += [f"scenes[{i}].{k}" for k, v in data.items() if v == raw]
        paths += [f"scenes[{i}].references[{j}]" for j, r in enumerate(scene.references or ())
                  if r == raw]
        if (d := scene.dialogue) is not None:
            at = f"scenes[{i}].dialogue"
            paths += [f"{at}.audio"] if d.audio == raw else []
            paths += [f"{at}.speakers[{j}].{k}" for j, s in enumerate(d.speakers)
                      for k in ("photo", "audio") if getattr(s, k) == raw]
    return paths or ["scenes"]


def with_media_names(board: Storyboard, base_dir: Path, names: dict[str, str]) -> dict[str, Any]:
    """The storyboard as the API takes it: each file replaced by its media name (`names`:
    location -> name), references by id expanded to the images they stand for."""
    def name(raw: str) -> str:
        return names[locate(raw, base_dir)[0]]

    by_id = {r.id: [r.image] for r in board.references}
    by_id |= {c.id: list(c.references) for c in board.characters}
    data = board.model_dump(exclude_unset=True)
    for k in ("references", "rights"):
        data.pop(k, None)
    for ch in data.get("characters") or []:  # scenes bring them in (farm.spec.characters)
        if ch.get("references"):
            ch["references"] = [name(r) for r in ch["references"]]
    for scene in data["scenes"]:
        for key in ("image", "last_image", "pose_video", "face_video", "control_video", "mask",
                    "audio"):
            if scene.get(key) is not None:
                scene[key] = name(scene[key])
        if scene.get("references"):
            images = [img for entry in scene["references"]
                      for img in (by_id[entry] if is_reference_id(entry) else [entry])]
            scene["references"] = list(dict.fromkeys(name(i) for i in images))
        if (dialogue := scene.get("dialogue")) is not None:  # its mixed track, photos, tracks
            for item in (dialogue, *dialogue["speakers"]):
                for key in ("audio", "photo"):
                    if item.get(key) is not None:
                        item[key] = name(item[key])
    rename_loras(data, lambda raw: names[_lora_at(raw, base_dir)[0]])
    return data


def _lora_at(raw: str, base_dir: Path) -> tuple[str, str | None]:
    """Where a storyboard's LoRA entry is (a file, or the file in a diffusers folder)."""
    return lora_location(raw, lambda _field, r: locate(r, base_dir))


def sha256(location: str) -> str:
    h = hashlib.sha256()
    with _open(location) as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def upload_messages(file: MediaFile) -> Iterator[pb.UploadMediaRequest]:
    """UploadMedia's messages: the metadata, then the bytes in chunks of at most 1 MiB."""
    media = pb.Media(display_name=file.display_name)
    if file.rights is not None:
        media.rights.CopyFrom(file.rights)
    yield pb.UploadMediaRequest(media=media)
    with _open(file.location) as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            yield pb.UploadMediaRequest(data=block)


def needs_upload(found: pb.Media | None, file: MediaFile) -> bool:
    """Whether to send the file: the server lacks it, or lacks the rights it should carry."""
    return found is None or (file.rights is not None and found.rights != file.rights)


def _open(location: str):
    if is_url(location):
        import fsspec

        return fsspec.open(location, "rb").open()
    return open(location, "rb")
