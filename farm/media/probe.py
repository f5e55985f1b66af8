"""Media checks before any model work: every input of every scene is read and decoded (the
frames the scene will use, at its frame rate) with the CPU decoders, so a corrupt,
unsupported or too short file is a validation error naming the field, the file and the
problem, not a failed task on a GPU worker minutes later.
"""

from __future__ import annotations

from farm.media.audio import decode_audio
from farm.media.decode import MediaError, decode_image, decode_video, is_image
from farm.spec.errors import FieldError
from farm.spec.film import Film, Scene

VIDEO_FIELDS = ("pose_video", "face_video", "control_video")


def check_media(film: Film) -> list[FieldError]:
    """Every problem with the film's media inputs, by field path."""
    errors = []
    for scene in film.scenes:
        for name, location in scene.inputs.items():
            try:
                _check(scene, film.fps, name.split("[")[0], location)
            except MediaError as exc:
                errors.append(FieldError(f"scenes[{scene.index}].{name}", str(exc)))
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
