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
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from farm.spec.film import Film
from farm.spec.timeline import Cut, read_timeline


def export_timeline(out: str | Path, film: Film, cut: Cut, frames_dir: str | Path,
                    render: dict[str, Any]) -> Path:
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


def _timeline_of_storyboard(film: Film, cut: Cut) -> tuple[Any, Any]:
    import opentimelineio as otio

    rt = otio.opentime.RationalTime
    timeline = otio.schema.Timeline(name=film.title,
                                    global_start_time=rt(cut.start_frame, film.fps))
    timeline.metadata["reelfarm"] = {"title": film.title, "fps": film.fps, "width": film.width,
                                     "height": film.height, "model": film.model,
                                     "steps": film.num_steps, "shift": film.shift,
                                     "solver": film.solver}
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
