"""What a served film delivers carries what `reelfarm render` delivers: the label inside every
file, the farm's signed content credentials, manifests, and the scenes' sound.

    frame ──write_frame──> frames/<scene>/<scene>.NNNN.png   "AI-generated" PNG text, signed
                           (StreamFrames sends these bytes as stored, so streamed and fetched
                           PNGs carry the same label and credentials)
    every frame ──FrameArchive──> .film.part.mp4 ──finish_movie──> + scene audio (aligned as
                           locally), labelled tags, signed  ──> film.mp4
                           film.mp4.provenance.json, frames/<scene>/provenance.json
    with `delivery:`  ──DeliveryWriter──> .delivery.part.mp4 + delivery/<scene>/*.png
                           ──finish_conformed──> + the sound (to the conformed frames),
                           signed, manifests saying what was conformed ──> delivery.mp4

The record inside every credential and manifest says what made the film: the model and its
weights, each scene's prompt and seed, and each input media file with its sha256 and the
rights statement it was uploaded with (which photo and which voice made this video).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.media.library import blob_sha
from farm.media.provenance import Provenance, film_record, input_media_hashes, label_tags
from farm.media.stills import write_png
from farm.media.writers import png_path
from farm.spec.film import Film

if TYPE_CHECKING:
    from farm.media.conform import DeliveryWriter

# (film id, film, tenant) -> its Delivery; the server's (local_server, DirectorServer).
DeliveryMaker = Callable[[str, Film, str], "Delivery"]


@dataclass
class Delivery:
    film: Film
    provenance: Provenance

    def write_frame(self, root: Path, scene_id: str, index: int, frame: np.ndarray) -> Path:
        """One archived frame: a labelled PNG, signed before anyone can read it (written
        beside its final name, then moved into place)."""
        path = png_path(root, scene_id, index)
        part = write_png(path.with_name(f".{path.name}.part.png"), frame, label_tags("png"))
        self.provenance.sign(part, "png", name=path.name)
        part.replace(path)
        return path

    def finish_movie(self, mp4: Path, frames_root: Path, name: str) -> None:
        """The assembled movie (`mp4`, to be renamed `name`) gets the scenes' sound and its
        credentials; the movie and each scene's frames get their manifests."""
        from farm.media.audio import add_film_audio, scene_sound

        add_film_audio(mp4, [(s.num_frames, scene_sound(s)) for s in self.film.scenes],
                       self.film.fps)
        self.provenance.write_file(mp4, "mp4", name=name)
        for scene in self.film.scenes:
            files = sorted((frames_root / scene.id).glob("*.png"))
            self.provenance.write_sequence(frames_root / scene.id, "png", files, sign=False)

    def finish_conformed(self, mp4: Path, writer: DeliveryWriter, name: str) -> None:
        """The conformed movie (`mp4`, to be renamed `name`) and sequence: the scenes'
        sound cut to the delivered frames, the label and credentials as on the render's,
        and manifests (and credentials) that say what was conformed."""
        from farm.media.audio import add_film_audio, scene_sound

        audio = {s.id: scene_sound(s) for s in self.film.scenes}
        add_film_audio(mp4, [(n, audio.get(sid) if sid else None) for sid, n in writer.slots],
                       writer.delivery.fps)
        extra = {"conform": writer.record()}
        self.provenance.write_file(mp4, "mp4", name=name, extra=extra)
        for folder, files in writer.sequences.items():
            self.provenance.write_sequence(folder, "png", files, extra=extra)


class WeightHashes:
    """Each served model's weight hashes (farm.media.provenance.weight_hashes), computed
    once, in the background from the server's start: a real checkpoint is tens of GB."""

    def __init__(self, sources: Mapping[str, Any]):
        from concurrent.futures import ThreadPoolExecutor

        from farm.media.provenance import weight_hashes

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="weight-hash")
        self._hashes = {name: self._pool.submit(weight_hashes, name, source.seed, source.path)
                        for name, source in sources.items()}

    def __call__(self, model: str, wait_s: float = 2.0) -> Any:
        future = self._hashes.get(model)
        if future is None:
            return "not hashed: not a model this server was started with"
        try:
            return future.result(timeout=wait_s)
        except TimeoutError:
            return "not hashed yet when the film was accepted (hashing takes minutes)"


def default_signer(artifacts: str | Path) -> Any:
    """The farm's own chain when the operator gives no key: made once in `signing/` beside
    the artifact folder (`.reelfarm/signing` for the default `.reelfarm/artifacts`, the
    folder `reelfarm render` uses too); valid, but on no trust list."""
    from farm.media.credentials import local_signing

    return local_signing(Path(str(artifacts)).parent / "signing").load()


def served_delivery(signer: Any, weights: Callable[[str], Any],
                    describe: Callable[[str, str], dict]) -> DeliveryMaker:
    """The Delivery of each film: `signer` (farm.media.credentials) signs; `weights(model)`
    is the model's weight hashes (computed once per model); `describe(tenant, sha256)`
    what the media library knows of an uploaded input (its name, rights statement)."""
    def make(film_id: str, film: Film, tenant: str) -> Delivery:
        inputs = input_media_hashes(film.scenes, blob_sha)  # uploads are hashed already
        for entry in inputs:
            entry.update(describe(tenant, entry.get("sha256", "")))
        return Delivery(film, Provenance(film_record(film, weights(film.model), inputs) | {
            "served": {"film": f"films/{film_id}", "accepted": _now()}}, signer))
    return make


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
