"""The deliverables of one render, written while frames stream in (in film order):

    OUT.mp4                     the cut: scenes and black gap frames at their places,
                                h264/yuv420p, start timecode, AI-generated tags
    FRAMES/<scene>/<scene>.NNNN.png   per-scene PNG sequences (8 or 16 bits)
    EXR/<scene>/<scene>.NNNN.exr      per-scene OpenEXR sequences (half float, linear)
    SHEET.png                   contact sheet: one labelled thumbnail strip per scene
    DELIVERY.mp4, DELIVERY_FRAMES/<scene>/<scene>.NNNN.png
                                with the film's `delivery:`, the same cut conformed to the
                                edit's rate and size (farm.media.conform), frame by frame

Gaps are not rendered and have no image sequence (a gap is no scene): they exist as
black frames in the mp4 and as Gaps in an exported timeline. Every file carries the
label in its own metadata; `finish` writes the provenance manifests beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from farm.media import stills
from farm.media.conform import DeliveryWriter
from farm.media.contact import SceneStrip, burn_label, contact_sheet, thumbnail_indices
from farm.media.movie import timecode
from farm.media.provenance import Provenance, label_tags
from farm.media.writers import Mp4Writer
from farm.spec.delivery import Delivery
from farm.spec.timeline import Cut


@dataclass(frozen=True, slots=True)
class DeliverableOptions:
    mp4: Path
    frames_dir: Path | None = None
    png_bits: int = 8
    exr_dir: Path | None = None
    contact_sheet: Path | None = None
    # Burn a visible "AI-generated" into every rendered frame (off by default).
    label: bool = False
    # The conformed deliverables (written only for a film with a `delivery:`).
    delivery_mp4: Path | None = None
    delivery_frames_dir: Path | None = None


@dataclass
class Written:
    """What was written, for the manifests: files, and frame files per sequence folder."""

    files: list[tuple[Path, str]] = field(default_factory=list)
    sequences: dict[Path, tuple[str, list[Path]]] = field(default_factory=dict)
    # What was conformed, per conformed file or sequence folder (their manifests say it).
    conform: dict[Path, dict] = field(default_factory=dict)


class Deliverables:
    """Takes (scene id, index, frame) in film order; places gaps; writes every deliverable."""

    def __init__(self, options: DeliverableOptions, cut: Cut, fps: int, width: int, height: int,
                 title: str, delivery: Delivery | None = None):
        self.options, self.cut = options, cut
        self.width, self.height = width, height
        self.movie = Mp4Writer(options.mp4, fps, width, height,
                                 metadata={"title": title, **label_tags("mp4")},
                                 start_timecode=timecode(cut.start_frame, fps))
        self._next_slot = 0
        self._strips = {s.scene_id: SceneStrip(s.scene_id, s.frames, [])
                        for s in cut.slots if s.kind == "scene"}
        self.written = Written()
        self.gap_frames = 0
        self.conformed = None
        if delivery is not None and options.delivery_mp4 is not None:
            self.conformed = DeliveryWriter(
                delivery, options.delivery_mp4, options.delivery_frames_dir, title=title,
                start_frame=cut.start_frame, label=options.label, png_bits=options.png_bits)

    def write(self, scene_id: str, index: int, frame: np.ndarray) -> None:
        if index == 0:
            self._place_gaps_before(scene_id)
        strip = self._strips[scene_id]
        if self.conformed is not None:  # the unlabelled frame: the label is burned after
            self.conformed.write(scene_id, index, frame, strip.num_frames)
        if self.options.label:
            frame = burn_label(frame)
        self.movie.write(frame)
        self._write_stills(scene_id, index, frame)
        if index in thumbnail_indices(strip.num_frames):
            strip.thumbs.append((index, frame))

    def _place_gaps_before(self, scene_id: str) -> None:
        """Gaps between the previous scene and this one go into the movie now (in order)."""
        slots = self.cut.slots
        while self._next_slot < len(slots) and slots[self._next_slot].kind == "gap":
            self._write_gap(slots[self._next_slot].frames)
            self._next_slot += 1
        if self._next_slot >= len(slots) or slots[self._next_slot].scene_id != scene_id:
            raise ValueError(f"frames of scene {scene_id!r} arrived out of the cut's order")
        self._next_slot += 1

    def _write_gap(self, frames: int) -> None:
        black = np.zeros((self.height, self.width, 3), np.uint8)
        for _ in range(frames):
            self.movie.write(black)
        self.gap_frames += frames
        if self.conformed is not None:
            self.conformed.gap(frames)

    def _write_stills(self, scene_id: str, index: int, frame: np.ndarray) -> None:
        o = self.options
        if o.frames_dir is not None:
            path = stills.frame_path(o.frames_dir, scene_id, index, ".png")
            stills.write_png(path, frame, label_tags("png"), bits=o.png_bits)
            self._add_frame(path, f"png{o.png_bits}-sequence")
        if o.exr_dir is not None:
            path = stills.frame_path(o.exr_dir, scene_id, index, ".exr")
            stills.write_exr(path, frame, label_tags("exr"))
            self._add_frame(path, "exr-sequence")

    def _add_frame(self, path: Path, kind: str) -> None:
        self.written.sequences.setdefault(path.parent, (kind, []))[1].append(path)

    def close(self, complete: bool = True) -> Written:
        """Finish the movie (trailing gaps too when the film completed) and the sheet."""
        if complete:
            for slot in self.cut.slots[self._next_slot:]:
                if slot.kind == "gap":
                    self._write_gap(slot.frames)
        self.movie.close()
        self.written.files.append((self.options.mp4, "mp4"))
        if self.conformed is not None:
            self._close_conformed(self.conformed)
        if self.options.contact_sheet is not None:
            sheet = contact_sheet(list(self._strips.values()), self.width, self.height)
            stills.write_png(self.options.contact_sheet, sheet, label_tags("png"))
            self.written.files.append((self.options.contact_sheet, "contact-sheet"))
        return self.written

    def _close_conformed(self, conformed: DeliveryWriter) -> None:
        conformed.close()
        record = {"conform": conformed.record()}
        self.written.files.append((conformed.mp4, "mp4"))
        self.written.conform[conformed.mp4] = record
        for folder, files in conformed.sequences.items():
            self.written.sequences[folder] = (f"png{conformed.png_bits}-sequence", files)
            self.written.conform[folder] = record


def write_manifests(written: Written, provenance: Provenance) -> list[Path]:
    """A manifest beside every deliverable file and in every sequence folder; those of
    conformed ones also say what was conformed."""
    out = [provenance.write_file(path, kind, extra=written.conform.get(path))
           for path, kind in written.files]
    out += [provenance.write_sequence(folder, kind, files, extra=written.conform.get(folder))
            for folder, (kind, files) in written.sequences.items()]
    return out
