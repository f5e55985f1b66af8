"""The deliverables of `reelfarm render`: flags, the writer the frame loop feeds, and the
provenance (signed C2PA credentials in mp4 and PNGs, sidecar manifests) and timeline export
once the film is done."""

from __future__ import annotations

import argparse
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from farm.cli.common import LoadedFilm
from farm.cli.signing import add_signing_flags, load_signer


def add_output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames-dir",
                   help="also write every frame as PNG: DIR/<scene>/<scene>.NNNN.png")
    p.add_argument("--png-depth", type=int, choices=(8, 16), default=8,
                   help="bits per channel of the PNG frames (16: value*257, exact)")
    p.add_argument("--exr-dir", help="also write every frame as OpenEXR (half float, linear): "
                                     "DIR/<scene>/<scene>.NNNN.exr")
    p.add_argument("--contact-sheet", help="write a contact sheet PNG (a labelled strip per scene)")
    p.add_argument("--otio-out", help="write an .otio timeline whose clips reference the rendered "
                                      "PNG sequences (frames go to --frames-dir, default "
                                      "<otio name>_frames/ beside it)")
    p.add_argument("--label", action="store_true",
                   help="burn a visible 'AI-generated' label into every rendered frame")
    add_signing_flags(p)


def check_output_flags(args: argparse.Namespace) -> str:
    """'' if the deliverable flags can be honoured, else why not (before any work)."""
    if args.exr_dir:
        from farm.media.stills import exr_available

        if why := exr_available():
            return f"--exr-dir: {why}"
    if args.otio_out and Path(args.otio_out).suffix.lower() != ".otio":
        return f"--otio-out: must name an .otio file, not {Path(args.otio_out).name}"
    signer, problem = load_signer(args)
    args.signer = signer  # loaded once, here: finish() signs with it
    return problem


def frames_dir(args: argparse.Namespace) -> Path | None:
    if args.frames_dir:
        return Path(args.frames_dir)
    if args.otio_out:
        out = Path(args.otio_out)
        return out.with_name(out.stem + "_frames")
    return None


def open_deliverables(args: argparse.Namespace, loaded: LoadedFilm) -> Any:
    from farm.media.deliverables import DeliverableOptions, Deliverables

    f = loaded.film
    options = DeliverableOptions(
        mp4=Path(args.output), frames_dir=frames_dir(args), png_bits=args.png_depth,
        exr_dir=Path(args.exr_dir) if args.exr_dir else None,
        contact_sheet=Path(args.contact_sheet) if args.contact_sheet else None, label=args.label)
    return Deliverables(options, loaded.cut, f.fps, f.width, f.height, f.title)


class ProvenanceRecorder:
    """Collects what manifests say; hashes model weights in the background while the film
    renders (a real checkpoint is tens of GB, minutes of sha256)."""

    def __init__(self, loaded: LoadedFilm):
        from farm.media.provenance import input_media_hashes, weight_hashes
        from farm.model.loader import resolve_model

        self.loaded = loaded
        self.started = _now()
        self._t0 = time.monotonic()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="weight-hash")
        source = resolve_model(loaded.film.model)
        self._weights: Future = self._pool.submit(weight_hashes, loaded.film.model,
                                                  source.seed, source.path)
        self._inputs: Future = self._pool.submit(input_media_hashes, loaded.film.scenes)

    def record(self, first_frame_s: float | None) -> dict[str, Any]:
        from farm.media.provenance import film_record, sha256_path

        loaded = self.loaded
        weights, inputs = self._weights.result(), self._inputs.result()
        self._pool.shutdown()
        record = film_record(loaded.film, weights, _with_rights(inputs, loaded))
        record["film"]["start_frame"] = loaded.cut.start_frame
        return record | {
            "source": {"file": loaded.source.name, "sha256": sha256_path(loaded.source)},
            "gaps": [{"after": _previous_scene(loaded.cut, i), "frames": slot.frames}
                     for i, slot in enumerate(loaded.cut.slots) if slot.kind == "gap"],
            "times": {"started": self.started, "finished": _now(),
                      "seconds": round(time.monotonic() - self._t0, 3),
                      "time_to_first_frame_s": first_frame_s},
        }


def _with_rights(inputs: list[dict], loaded: LoadedFilm) -> list[dict]:
    """The storyboard's rights statements on the inputs they cover (input_media_hashes
    lists the inputs in scene order, field order, as below)."""
    from farm.spec.inputs import locate

    base = loaded.source.resolve().parent
    rights = {locate(r.media, base)[0]: {"holder": r.holder, "reference": r.reference}
              for r in loaded.board.rights}
    locations = [loc for s in loaded.film.scenes for _, loc in s.inputs.items()]
    return [entry | ({"rights": rights[loc]} if loc in rights else {})
            for entry, loc in zip(inputs, locations, strict=True)]


def finish(args: argparse.Namespace, loaded: LoadedFilm, written: Any,
           recorder: ProvenanceRecorder, first_frame_s: float | None) -> list[Path]:
    """Scene audio into the movie, manifests for every deliverable, then the timeline
    export (with its own manifest)."""
    from farm.media.deliverables import write_manifests
    from farm.media.provenance import DIGITAL_SOURCE_TYPE, LABEL, Provenance

    add_audio(Path(args.output), loaded)
    signer = getattr(args, "signer", None)
    if signer is None:  # check_output_flags did not run (a caller of finish alone)
        signer, problem = load_signer(args)
        if problem:
            raise ValueError(problem)
    provenance = Provenance(recorder.record(first_frame_s), signer)
    out = write_manifests(written, provenance)
    if args.otio_out:
        from farm.media.otio_export import export_timeline

        render = {"label": LABEL, "digital_source_type": DIGITAL_SOURCE_TYPE,
                  **{k: provenance.record[k] for k in ("software", "model", "source", "times")}}
        path = export_timeline(args.otio_out, loaded.film, loaded.cut, frames_dir(args), render)
        out.append(provenance.write_file(path, "otio"))
    return out


def add_audio(mp4: Path, loaded: LoadedFilm) -> bool:
    """Mux the scenes' audio (aligned to their frames, silence elsewhere) into the movie."""
    from farm.media.audio import add_film_audio

    audio = {s.id: s.inputs.audio for s in loaded.film.scenes}
    slots = [(slot.frames, audio.get(slot.scene_id) if slot.kind == "scene" else None)
             for slot in loaded.cut.slots]
    return add_film_audio(mp4, slots, loaded.film.fps)


def _previous_scene(cut: Any, i: int) -> str | None:
    before = [s.scene_id for s in cut.slots[:i] if s.kind == "scene"]
    return before[-1] if before else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
