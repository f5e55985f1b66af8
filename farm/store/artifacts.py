"""The artifact store: phase handoffs (checkpoints) under an fsspec URL, with checksums.

Layout under the store's root URL (a local folder by default):

    films/<film id>/handoffs/<scene id>/<segment>/p<phase>.safetensors   phase checkpoints
    films/<film id>/frames/<scene id>/<scene id>.NNNN.png                 archived frames
    films/<film id>/film.mp4                                               the deliverable

(frames and the mp4 are written by the director's frame archive, which needs a local or
mounted folder; checkpoints may live in any fsspec store that every worker can reach.)

A checkpoint is named by a key that carries its own checksum,

    ckpt:<path relative to the root>#<sha256 hex>

so a worker that resumes from it needs no database: it reads the file and refuses the
bytes unless they hash to the sha256 in the key (a corrupt or truncated checkpoint is
never used; the phase is computed again).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import fsspec

PREFIX = "ckpt:"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not match its checksum."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    film_id: str
    segment_id: str
    phase_index: int
    key: str
    nbytes: int


class ArtifactStore:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}"

    @staticmethod
    def handoff_path(film_id: str, segment_id: str, phase_index: int) -> str:
        return f"films/{film_id}/handoffs/{segment_id}/p{phase_index}.safetensors"

    def save_checkpoint(self, film_id: str, segment_id: str, phase_index: int,
                        data: bytes) -> Checkpoint:
        path = self.handoff_path(film_id, segment_id, phase_index)
        full = self._full(path)
        self.fs.makedirs(full.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(full, data)
        digest = hashlib.sha256(data).hexdigest()
        return Checkpoint(film_id, segment_id, phase_index, f"{PREFIX}{path}#{digest}", len(data))

    def load_checkpoint(self, key: str) -> bytes:
        path, digest = parse_key(key)
        try:
            data = self.fs.cat_file(self._full(path))
        except OSError as exc:
            raise CheckpointError(f"checkpoint {path} unreadable: {exc}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise CheckpointError(f"checkpoint {path} does not match its checksum")
        return data

    def remove_film_handoffs(self, film_id: str) -> None:
        path = self._full(f"films/{film_id}/handoffs")
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)


def is_checkpoint_key(key: str | None) -> bool:
    return key is not None and key.startswith(PREFIX)


def parse_key(key: str) -> tuple[str, str]:
    if not is_checkpoint_key(key) or "#" not in key:
        raise CheckpointError(f"not a checkpoint key: {key!r}")
    path, digest = key[len(PREFIX):].rsplit("#", 1)
    return path, digest
