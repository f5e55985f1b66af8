"""Timelines out: an .otio timeline whose clips reference the rendered PNG sequences.

From a timeline render, the export is the original timeline (re-read, so markers, audio
tracks, names and metadata survive) with each rendered clip's media reference replaced by
an ImageSequenceReference; clips keep their source_range, so the cut is unchanged and
`frame_for_time(source_range.start_time)` is frame 1 of the scene's sequence. From a
storyboard, a new timeline with one clip per scene (metadata["reelfarm"] holds the scene
fields, so the export imports back as the same film).

Render facts go under metadata["reelfarm_render"] (not "reelfarm", which stays the
request, so an exported timeline renders again unchanged). Media URLs are relative to the
.otio file, so the timeline and its frames move together.

A film with `delivery:` has two media per clip (OTIO's multiple media references):

    "DEFAULT_MEDIA"  the rendered PNGs   rate fps_in,  available_range N frames
    "delivery"       the conformed PNGs  rate fps_out, available_range floor(N*fps_out/fps_in)

each at its exact integer rate; metadata["reelfarm_render"]["delivery"] says what was
conformed. The clip's source_range stays in the render's frames (the cut is the render's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from farm.spec.delivery import Delivery
from farm.spec.film import Film
from farm.spec.timeline import Cut, read_timeline


def export_timeline(out: str | Path, film: Film, cut: Cut, frames_dir: str | Path,
                    render: dict[str, Any], delivery_frames_dir: str | Path | None = None) -> Path:
    """`delivery_frames_dir`: the conformed sequences of a film with `delivery:`."""
    import opentimelineio as otio

    out = Path(out)
    if out.suffix.lower() != ".otio":
        raise ValueError(f"--otio-out must name an .otio file, not {out.name}")
    if cut.source is not None:
        timeline = read_timeline(cut.source, cut.read_rate)
        track = timeline.tracks[cut.track]
    else:
        timeline, track = _timeline_of_storyboard(film, cut)
    timeline.metadata["reelfarm_render"] = render
    for n, slot in enumerate(cut.slots):
        if slot.kind != "scene":
            continue
        clip = track[slot.item if slot.item is not None else n]
        scene = film.scene(slot.scene_id)
        clip.media_reference = _sequence(Path(frames_dir) / scene.id, out.parent, scene.id,
                                         clip.source_range, film.fps)
        clip.metadata["reelfarm_render"] = {"scene_id": scene.id, "frames": scene.num_frames,
                                            "seed": scene.seed, "continuity": scene.continuity}
        if film.delivery is not None and delivery_frames_dir is not None:
            _add_delivery(clip, Path(delivery_frames_dir) / scene.id, out.parent, film.delivery)
    if film.delivery is not None and delivery_frames_dir is not None:
        timeline.metadata["reelfarm_render"]["delivery"] = film.delivery.record()
    out.parent.mkdir(parents=True, exist_ok=True)
    otio.adapters.write_to_file(timeline, str(out))
    return out


def _sequence(folder: Path, base: Path, scene_id: str, source_range: Any, fps: int) -> Any:
    import opentimelineio as otio

    url = Path(os.path.relpath(folder.resolve(), base.resolve())).as_posix() + "/"
    return otio.schema.ImageSequenceReference(
        target_url_base=url, name_prefix=f"{scene_id}.", name_suffix=".png",
        start_frame=1, frame_step=1, rate=fps, frame_zero_padding=4,
        available_range=otio.opentime.TimeRange(source_range.start_time, source_range.duration))


def _add_delivery(clip: Any, folder: Path, base: Path, d: Delivery) -> None:
    """The conformed sequence as the clip's "delivery" media, beside its render."""
    import opentimelineio as otio

    rt = otio.opentime.RationalTime
    span = clip.source_range
    # Whole delivered frames, as farm.spec.delivery counts them (floor).
    start = rt(d.frames(round(span.start_time.value)), d.fps)
    delivered = otio.opentime.TimeRange(start, rt(d.frames(round(span.duration.value)), d.fps))
    ref = _sequence(folder, base, folder.name, delivered, d.fps)
    clip.set_media_references({otio.schema.Clip.DEFAULT_MEDIA_KEY: clip.media_reference,
                               "delivery": ref}, otio.schema.Clip.DEFAULT_MEDIA_KEY)
    clip.metadata["reelfarm_render"]["delivery_frames"] = int(delivered.duration.value)


def _delivery_request(d: Delivery) -> dict[str, Any]:
    """The `delivery:` a re-import of the export gives (the same conform)."""
    out = {"fps": d.fps, "width": d.width, "height": d.height, "scale": d.scale,
           "fps_method": d.fps_method}
    return out | ({"fit": d.fit} if d.fit != "none" else {})


def _timeline_of_storyboard(film: Film, cut: Cut) -> tuple[Any, Any]:
    import opentimelineio as otio

    rt = otio.opentime.RationalTime
    timeline = otio.schema.Timeline(name=film.title,
                                    global_start_time=rt(cut.start_frame, film.fps))
    timeline.metadata["reelfarm"] = {"title": film.title, "fps": film.fps, "width": film.width,
                                     "height": film.height, "model": film.model,
                                     "steps": film.num_steps, "shift": film.shift,
                                     "solver": film.solver}
    if film.delivery is not None:
        timeline.metadata["reelfarm"]["delivery"] = _delivery_request(film.delivery)
    track = otio.schema.Track(name="reelfarm", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for slot in cut.slots:
        span = otio.opentime.TimeRange(rt(0, film.fps), rt(slot.frames, film.fps))
        if slot.kind == "gap":
            track.append(otio.schema.Gap(source_range=span))
            continue
        s = film.scene(slot.scene_id)
        clip = otio.schema.Clip(name=s.id, source_range=span)
        clip.metadata["reelfarm"] = {
            "id": s.id, "prompt": s.prompt, "negative_prompt": s.negative_prompt, "seed": s.seed,
            "guidance": dict(zip(film.profile.experts, s.guidance, strict=True)),
            "continuity": s.continuity, "window": s.window, "overlap": s.overlap,
            **({"image": s.image} if s.image else {})}
        track.append(clip)
    return timeline, track
