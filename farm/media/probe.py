"""Media checks before any model work: every input of every scene is read and decoded (the
frames the scene will use, at its frame rate) with the CPU decoders, so a corrupt,
unsupported or too short file is a validation error naming the field, the file and the
problem, not a failed task on a GPU worker minutes later.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from farm.media.audio import SAMPLE_RATE, decode_audio
from farm.media.decode import MediaError, decode_image, decode_video, is_image
from farm.media.library import blob_sha
from farm.spec.dialogue import DialogueShot, split_slice
from farm.spec.errors import FieldError
from farm.spec.film import Film, Scene

VIDEO_FIELDS = ("pose_video", "face_video", "control_video")


def check_media(film: Film) -> list[FieldError]:
    """Every problem with the film's media inputs, by field path (a dialogue shot's: its
    turn's in the storyboard)."""
    errors = []
    durations: dict[str, float] = {}  # a dialogue's tracks, read once for all its shots
    for scene in film.scenes:
        at = scene.dialogue.path if scene.dialogue else f"scenes[{scene.index}]"
        for name, location in scene.inputs.items():
            try:
                _check(scene, film.fps, name.split("[")[0], location)
            except MediaError as exc:
                errors.append(FieldError(f"{at}.{name}", str(exc)))
        if scene.dialogue is not None:
            errors += _check_turn(scene.dialogue, durations)
    return errors


def _check_turn(shot: DialogueShot, durations: dict[str, float]) -> list[FieldError]:
    """Every track the shot plays lasts at least to its turn's end."""
    errors = []
    for location in shot.sound:
        base = split_slice(location)[0]
        if base not in durations:
            try:
                durations[base] = decode_audio(base).shape[1] / SAMPLE_RATE
            except MediaError:
                continue  # reported with the shot's own audio
        if durations[base] < Fraction(shot.end):
            # a server's blob by its location, which the API shows as its media name
            track = base if blob_sha(base) else Path(base).name
            errors.append(FieldError(f"{shot.path}.end", (
                f"{shot.speaker}'s turn ends at {float(Fraction(shot.end)):g} s, but "
                f"{track} has {durations[base]:g} s of audio: turns lie inside the audio")))
    return errors


def _check(scene: Scene, fps: int, kind: str, location: str) -> None:
    if kind == "audio":
        decode_audio(location)
    elif kind in VIDEO_FIELDS:
        decode_video(location, fps, scene.num_frames)
    elif kind == "mask" and not is_image(location):
        try:
            decode_video(location, fps, scene.num_frames)
        except MediaError as exc:
            raise MediaError(location,
                             f"neither an image nor a readable video: {exc.problem}") from None
    else:
        decode_image(location)
