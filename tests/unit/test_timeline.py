"""OpenTimelineIO import: clips -> scenes, gaps -> black frames, exact durations, errors
that name the timeline field (no torch here)."""

from __future__ import annotations

import opentimelineio as otio
import pytest

from farm.spec.errors import SpecError
from farm.spec.timeline import Slot, is_timeline, load_timeline

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange


def clip(name: str, frames: int, rate: float = 16, start: int = 0, **md) -> otio.schema.Clip:
    c = otio.schema.Clip(name=name, source_range=TR(RT(start, rate), RT(frames, rate)))
    if md:
        c.metadata["reelfarm"] = md
    return c


def gap(frames: int, rate: float = 16) -> otio.schema.Gap:
    return otio.schema.Gap(source_range=TR(RT(0, rate), RT(frames, rate)))


def timeline(items: list, film: dict | None = None, start: RT | None = None,
             name: str = "Cut") -> otio.schema.Timeline:
    tl = otio.schema.Timeline(name=name, global_start_time=start)
    tl.metadata["reelfarm"] = {"width": 64, "height": 64} if film is None else film
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for item in items:
        track.append(item)
    tl.tracks.append(track)
    tl.tracks.append(otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio))
    return tl


def save(tl: otio.schema.Timeline, tmp_path, name: str = "cut.otio") -> str:
    path = str(tmp_path / name)
    otio.adapters.write_to_file(tl, path)
    return path


def errors(tmp_path, tl, **flags) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        load_timeline(save(tl, tmp_path), flags)
    return {e.path: e.message for e in info.value.errors}


def three_clips_and_a_gap() -> list:
    return [clip("Shot 010", 5, start=100, prompt="a red fox", seed=1), gap(3),
            clip("sh020", 9, prompt="snow falls", seed=2, negative_prompt="blurry"),
            clip("sh030", 17, start=40, prompt="night", guidance={"high": 5.0})]


def test_clips_become_scenes_and_gaps_stay_in_place(tmp_path):
    tl = timeline(three_clips_and_a_gap(), {"width": 64, "height": 32, "steps": 4},
                  start=RT(16 * 3600, 16))
    imp = load_timeline(save(tl, tmp_path))
    board = imp.board
    assert (board.title, board.fps, board.width, board.height, board.steps) == (
        "Cut", 16, 64, 32, 4)
    assert [(s.id, s.frames, s.prompt, s.seed) for s in board.scenes] == [
        ("shot_010", 5, "a red fox", 1), ("sh020", 9, "snow falls", 2), ("sh030", 17, "night", 0)]
    assert board.scenes[1].negative_prompt == "blurry" and board.scenes[2].guidance == {"high": 5.0}
    assert imp.cut.slots == (Slot("scene", 5, "shot_010", 0), Slot("gap", 3, None, 1),
                             Slot("scene", 9, "sh020", 2), Slot("scene", 17, "sh030", 3))
    assert imp.cut.start_frame == 16 * 3600 and imp.cut.num_frames == 34 and imp.cut.track == 0


def test_flags_win_over_timeline_metadata_and_fps_converts_exactly(tmp_path):
    # 34 frames at 32 fps are exactly 17 frames at 16 fps.
    tl = timeline([clip("a", 34, rate=32, prompt="p")], {"width": 64, "height": 64, "fps": 32})
    imp = load_timeline(save(tl, tmp_path), {"fps": 16, "width": 128, "steps": None})
    assert (imp.board.fps, imp.board.width, imp.board.scenes[0].frames) == (16, 128, 17)


def test_clip_duration_that_is_not_4k_plus_1_names_the_clip_and_nearest_durations(tmp_path):
    errs = errors(tmp_path, timeline([clip("ok", 5, prompt="p"), clip("Long one", 18, prompt="p")]))
    assert list(errs) == ["tracks[0][1].source_range.duration"]
    msg = errs["tracks[0][1].source_range.duration"]
    assert "'Long one' is 18 frames at 16 fps, not 4k+1" in msg
    assert "nearest valid durations: 17 frames (1.0625 s) or 21 frames (1.3125 s)" in msg


def test_duration_that_is_not_a_whole_frame_at_the_film_fps_is_an_error(tmp_path):
    # 25 frames at 24 fps are 16.67 frames at 16 fps: never rounded.
    errs = errors(tmp_path, timeline([clip("a", 25, rate=24, prompt="p")]), fps=16)
    assert "16.6667 frames at the film's 16 fps, not a whole number; nearest whole: 16 or 17" in \
        errs["tracks[0][0].source_range.duration"]


def test_clip_without_prompt_is_an_error_naming_the_clip(tmp_path):
    errs = errors(tmp_path, timeline([clip("sh010", 5, prompt="p"), clip("sh020", 5),
                                      clip("sh030", 5, seed=3)]))
    assert set(errs) == {"tracks[0][1].metadata.reelfarm.prompt",
                         "tracks[0][2].metadata.reelfarm.prompt"}
    assert "clip 'sh020' has no prompt" in errs["tracks[0][1].metadata.reelfarm.prompt"]


def test_storyboard_rules_are_reported_at_the_timeline_field(tmp_path):
    tl = timeline([clip("a", 5, prompt="p", colour="red"), clip("b", 5, prompt="p", seed=-1)],
                  {"width": 64, "resolution": "4k"})
    errs = errors(tmp_path, tl)
    assert "unknown field" in errs["tracks[0][0].metadata.reelfarm.colour"]
    assert "greater than or equal to 0" in errs["tracks[0][1].metadata.reelfarm.seed"]
    assert "unknown film setting" in errs["metadata.reelfarm.resolution"]
    tl = timeline([clip("a", 5, prompt="p")], {"width": 64})
    assert errors(tmp_path, tl) == {"metadata.reelfarm.height": "required field is missing"}
    assert "--steps" in errors(tmp_path, timeline([clip("a", 5, prompt="p")]), steps=0)


def test_transitions_nested_tracks_and_second_video_tracks_are_errors(tmp_path):
    dissolve = otio.schema.Transition(name="x", in_offset=RT(2, 16), out_offset=RT(2, 16))
    errs = errors(tmp_path, timeline([clip("a", 9, prompt="p"), dissolve,
                                      clip("b", 9, prompt="q")]))
    assert "transitions are not supported" in errs["tracks[0][1]"]
    nested = otio.schema.Stack(name="comp")
    tl = timeline([nested], {"width": 64, "height": 64, "fps": 16})
    assert "nested Stack 'comp'" in errors(tmp_path, tl)["tracks[0][0]"]
    no_rate = timeline([otio.schema.Stack(name="comp")])
    assert "the timeline has no rate" in errors(tmp_path, no_rate)["metadata.reelfarm.fps"]
    tl = timeline([clip("a", 5, prompt="p")])
    second = otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video)
    second.append(clip("b", 5, prompt="p"))
    tl.tracks.append(second)
    assert "2 video tracks have items" in errors(tmp_path, tl)["tracks"]


def test_disabled_clips_are_gaps_and_duplicate_ids_are_errors(tmp_path):
    off = clip("off", 6, prompt="p")
    off.enabled = False
    imp = load_timeline(save(timeline([clip("a", 5, prompt="p"), off]), tmp_path))
    assert imp.cut.slots[1] == Slot("gap", 6, None, 1)
    errs = errors(tmp_path, timeline([clip("Shot A", 5, prompt="p"),
                                      clip("shot_a", 5, prompt="q")]))
    assert ("scene id 'shot_a' is also used by tracks[0][0]"
            in errs["tracks[0][1].metadata.reelfarm.id"])


def test_otioz_bundles_and_unknown_files_and_empty_tracks(tmp_path):
    tl = timeline(three_clips_and_a_gap())
    assert [s.id for s in load_timeline(save(tl, tmp_path, "cut.otioz")).board.scenes] == \
        ["shot_010", "sh020", "sh030"]
    assert is_timeline("x.OTIO") and is_timeline("a.edl") and not is_timeline("a.yaml")
    with pytest.raises(SpecError, match="cannot read timeline"):
        load_timeline(tmp_path / "missing.otio")
    assert "no clips to render" in errors(tmp_path, timeline([gap(4)]))["tracks[0]"]


EDL = """TITLE: cut
FCM: NON-DROP FRAME

001  AX       V     C        00:00:00:00 00:00:01:01 01:00:00:00 01:00:01:01
* FROM CLIP NAME: sh010
* REELFARM PROMPT: a fox: in the snow
* REELFARM SEED: 7
002  AX       V     C        00:00:00:00 00:00:00:05 01:00:01:05 01:00:01:10
* FROM CLIP NAME: sh020
* REELFARM PROMPT: dusk
"""


def test_edl_through_the_cmx_3600_adapter_with_prompts_in_comments(tmp_path):
    pytest.importorskip("otio_cmx3600_adapter")
    path = tmp_path / "cut.edl"
    path.write_text(EDL)
    imp = load_timeline(path, {"width": 64, "height": 64})
    assert imp.board.fps == 24  # the adapter's default rate; --fps reads it at another
    assert [(s.id, s.frames, s.prompt, s.seed) for s in imp.board.scenes] == [
        ("sh010", 25, "a fox: in the snow", 7), ("sh020", 5, "dusk", 0)]
    assert [s.kind for s in imp.cut.slots] == ["scene", "gap", "scene"]
    assert imp.cut.slots[1].frames == 4
    with pytest.raises(SpecError, match="SMPTE rate such as 24"):
        load_timeline(path, {"width": 64, "height": 64, "fps": 16})
