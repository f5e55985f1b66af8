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
    p.add_argument("--delivery-out", help="for a film with `delivery:`: the conformed mp4 "
                                          "(default <output>.delivery.mp4 beside -o)")
    p.add_argument("--delivery-frames-dir",
                   help="for a film with `delivery:`: the conformed PNG sequence (default "
                        "<frames dir>_delivery/ when frames are written)")
    add_signing_flags(p)


def check_output_flags(args: argparse.Namespace, film: Any = None) -> str:
    """'' if the deliverable flags can be honoured, else why not (before any work).
    `film`: the resolved film (the delivery flags need its `delivery:`)."""
    if args.exr_dir:
        from farm.media.stills import exr_available

        if why := exr_available():
            return f"--exr-dir: {why}"
    if args.otio_out and Path(args.otio_out).suffix.lower() != ".otio":
        return f"--otio-out: must name an .otio file, not {Path(args.otio_out).name}"
    if problem := _check_delivery_flags(args, film):
        return problem
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


def _check_delivery_flags(args: argparse.Namespace, film: Any) -> str:
    given = [f for f in ("delivery_out", "delivery_frames_dir") if getattr(args, f, None)]
    if given and film is not None and film.delivery is None:
        return f"--{given[0].replace('_', '-')}: the film has no `delivery:` to conform to"
    if getattr(args, "delivery_out", None) and Path(args.delivery_out).suffix.lower() != ".mp4":
        return f"--delivery-out: must name an .mp4 file, not {Path(args.delivery_out).name}"
    return ""


def delivery_paths(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """(conformed mp4, conformed frames folder or None) of a film with `delivery:`."""
    out = Path(args.output)
    mp4 = (Path(args.delivery_out) if args.delivery_out
           else out.with_name(out.stem + ".delivery.mp4"))
    if args.delivery_frames_dir:
        return mp4, Path(args.delivery_frames_dir)
    render = frames_dir(args)
    return mp4, render.with_name(render.name + "_delivery") if render is not None else None


def open_deliverables(args: argparse.Namespace, loaded: LoadedFilm) -> Any:
    from farm.media.deliverables import DeliverableOptions, Deliverables

    f = loaded.film
    mp4, frames = delivery_paths(args) if f.delivery is not None else (None, None)
    options = DeliverableOptions(
        mp4=Path(args.output), frames_dir=frames_dir(args), png_bits=args.png_depth,
        exr_dir=Path(args.exr_dir) if args.exr_dir else None,
        contact_sheet=Path(args.contact_sheet) if args.contact_sheet else None, label=args.label,
        delivery_mp4=mp4, delivery_frames_dir=frames)
    return Deliverables(options, loaded.cut, f.fps, f.width, f.height, f.title, f.delivery)


class ProvenanceRecorder:
    """Collects what manifests say; hashes model weights in the background while the film
    renders (a real checkpoint is tens of GB, minutes of sha256)."""

    def __init__(self, loaded: LoadedFilm):
        from farm.media.provenance import input_media_hashes, weight_hashes

        self.loaded = loaded
        self.started = _now()
        self._t0 = time.monotonic()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="weight-hash")
        source = loaded.model
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
    from farm.spec.dialogue import split_slice
    from farm.spec.inputs import locate

    base = loaded.source.resolve().parent
    rights = {locate(r.media, base)[0]: {"holder": r.holder, "reference": r.reference}
              for r in loaded.board.rights}
    # a dialogue shot's audio is a slice of a file: the file's rights
    files = [split_slice(loc)[0] for s in loaded.film.scenes for _, loc in s.inputs.items()]
    return [entry | ({"rights": rights[f]} if f in rights else {})
            for entry, f in zip(inputs, files, strict=True)]


def finish(args: argparse.Namespace, loaded: LoadedFilm, written: Any,
           recorder: ProvenanceRecorder, first_frame_s: float | None) -> list[Path]:
    """Scene audio into the movie, manifests for every deliverable, then the timeline
    export (with its own manifest)."""
    from farm.media.deliverables import write_manifests
    from farm.media.provenance import DIGITAL_SOURCE_TYPE, LABEL, Provenance

    add_audio(Path(args.output), loaded)
    if loaded.film.delivery is not None:
        add_audio(delivery_paths(args)[0], loaded, loaded.film.delivery)
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
        conformed = delivery_paths(args)[1] if loaded.film.delivery is not None else None
        path = export_timeline(args.otio_out, loaded.film, loaded.cut, frames_dir(args), render,
                               delivery_frames_dir=conformed)
        out.append(provenance.write_file(path, "otio"))
    return out


def add_audio(mp4: Path, loaded: LoadedFilm, delivery: Any = None) -> bool:
    """Mux the scenes' audio (aligned to their frames, silence elsewhere) into the movie;
    with `delivery` (farm.spec.delivery), to the conformed movie's frames."""
    from farm.media.audio import add_film_audio, scene_sound

    audio = {s.id: scene_sound(s) for s in loaded.film.scenes}
    frames = delivery.frames if delivery is not None else (lambda n: n)
    slots = [(frames(slot.frames), audio.get(slot.scene_id) if slot.kind == "scene" else None)
             for slot in loaded.cut.slots]
    return add_film_audio(mp4, slots, delivery.fps if delivery is not None else loaded.film.fps)


def _previous_scene(cut: Any, i: int) -> str | None:
    before = [s.scene_id for s in cut.slots[:i] if s.kind == "scene"]
    return before[-1] if before else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
