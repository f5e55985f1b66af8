"""Dialogue scenes (speech-to-video): a conversation cut into one S2V shot per turn.

    scenes:
      - id: talk
        prompt: two friends talk across a kitchen table
        dialogue:
          audio: talk.wav                  # one mixed track (or `audio:` on every speaker)
          speakers:
            - character: mira              # the film's character: its first reference image
            - {id: ben, photo: ben.png}    # or a photo given here
          turns:                           # seconds on the audio's clock, in order
            - {speaker: mira, start: 0, end: 1.4}
            - {speaker: ben, start: 1.55, end: 3.0}
            - {speaker: mira, start: 3.1, end: 3.9, reaction: true}   # ben, off screen

Frame rule (nothing is rounded silently): a time t cuts at frame c(t) = ceil(t * fps), the
first frame that starts at or after t, with t read as the decimal written. Turn k's shot is
frames [c(start_k), c(start_k+1)) of the dialogue (the first shot from frame 0, the last to
c(end) of the last turn): a pause after a turn stays on its speaker. Each shot is one S2V
scene, so its length must be 4k+1 frames; otherwise the error names the turn and the
nearest times that give valid lengths. Dialogue frame f plays audio time f / fps.

    audio     0 ........ 1.4 . 1.55 ............. 3.0 . 3.1 ........ 3.9 s
    turns     [ mira      ]     [ ben              ]     [mira, reaction]
    shots     [ talk-1-mira    )[ talk-2-ben            )[ talk-3-mira    )   at 16 fps:
    frames    0               25                       50                 63

Shot k is seeded `seed + k` (its own noise, as a scene of its own). A shot is driven by its
speaker's audio over the shot: the mixed track's slice, or that
speaker's own track's slice. A `reaction: true` turn shows its speaker listening (a reverse
shot): rendered from the photo with silence, while the deliverable plays the track on (the
other voice, off screen). The deliverable plays the mixed track (or every speaker's track,
summed) from the dialogue's first frame to its last, sample-exact at the cuts.

Slices travel as media fragments on the location, `talk.wav#t=25/16,49/16` (seconds as
exact fractions; `&gain=0`: silence), so every worker reads a shot's audio as any scene's.
Pure: no media libraries; farm.media.audio decodes the fragments.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from farm.spec.errors import FieldError
from farm.spec.frames import is_valid_frame_count, nearest_frame_counts, or_list
from farm.spec.profiles import PROFILES, ModelProfile

Id = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=32)]
Media = Annotated[str, Field(min_length=1)]
Seconds = Annotated[float, Field(ge=0)]
# Scene fields a dialogue scene does not take: its length comes from the turns, its
# photos, audio and characters from the speakers.
NOT_WITH_DIALOGUE = ("frames", "seconds", "image", "last_image", "pose_video", "face_video",
                     "control_video", "mask", "audio", "references", "start_from", "characters")


# Fields of a shot's scene that come from its turn (the rest: from the dialogue scene).
SHOT_FIELDS = ("id", "frames", "image", "audio", "characters")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Speaker(_Strict):
    """A character of the dialogue: a film character (`character:`) or one of this scene
    only (`id:` and `photo:`); `audio:` its own track, on the same clock as the others."""

    character: Id | None = None
    id: Id | None = None
    photo: Media | None = None
    audio: Media | None = None


class Turn(_Strict):
    """Who is on screen from `start` (seconds): the speaker, or a listener (`reaction`)."""

    speaker: Id
    start: Seconds
    end: Seconds
    reaction: bool = False


class DialogueSpec(_Strict):
    audio: Media | None = None
    speakers: Annotated[list[Speaker], Field(min_length=2)]
    turns: Annotated[list[Turn], Field(min_length=1)]


@dataclass(frozen=True, slots=True)
class DialogueShot:
    """What a resolved scene remembers of the dialogue it is a shot of."""

    dialogue: str            # the dialogue scene's id
    path: str                # its turn in the storyboard: "scenes[1].dialogue.turns[2]"
    turn: int
    speaker: str
    reaction: bool
    # Frames [first_frame, stop_frame) of the dialogue.
    first_frame: int
    stop_frame: int
    # The turn's end (seconds, exact): every track must last that long.
    end: str
    # What the deliverable plays during the shot, summed: each track's slice.
    sound: tuple[str, ...]

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DialogueShot | None:
        return None if data is None else cls(**{**data, "sound": tuple(data["sound"])})


def exact(seconds: float) -> Fraction:
    """The time as written (YAML 1.1 -> the float's shortest decimal), exactly."""
    return Fraction(repr(float(seconds)))


def cut_frame(seconds: float | Fraction, fps: int) -> int:
    """The first frame that starts at or after `seconds`: ceil(seconds * fps)."""
    t = seconds if isinstance(seconds, Fraction) else exact(seconds)
    return math.ceil(t * fps)


def time_for(frame: int, fps: int) -> str:
    """A decimal time that cuts at `frame` (in ((frame - 1) / fps, frame / fps])."""
    t = math.floor(Fraction(frame, fps) * 10_000) / 10_000
    return f"{t:.4f}".rstrip("0").rstrip(".") + " s"


# ---- audio slices as media fragments (decoded by farm.media.audio) -------------------

_SLICE = re.compile(r"^(?P<base>.+)#t=(?P<a>\d+)/(?P<fa>\d+),(?P<b>\d+)/(?P<fb>\d+)"
                    r"(?P<mute>&gain=0)?$")


def audio_slice(location: str, start: int, stop: int, fps: int, silent: bool = False) -> str:
    """`location` limited to frames [start, stop) at `fps`; `silent`: its silence."""
    return f"{location}#t={start}/{fps},{stop}/{fps}" + ("&gain=0" if silent else "")


def split_slice(location: str) -> tuple[str, tuple[Fraction, Fraction, bool] | None]:
    """(file location, (start s, stop s, silent) or None for the whole file)."""
    m = _SLICE.match(location)
    if m is None:
        return location, None
    return m["base"], (Fraction(int(m["a"]), int(m["fa"])), Fraction(int(m["b"]), int(m["fb"])),
                       m["mute"] is not None)


def media_of(spec: DialogueSpec) -> list[str]:
    """Every media file the dialogue names, as written (photos, tracks)."""
    out = [spec.audio] if spec.audio else []
    for s in spec.speakers:
        out += [v for v in (s.photo, s.audio) if v]
    return out


# ---- checks of the storyboard (parse_storyboard) --------------------------------------


def check_dialogues(board: Any) -> list[FieldError]:
    """Every problem with the storyboard's dialogue scenes that needs no model: fields,
    speakers, turns, and the frame rule at the film's fps."""
    errors: list[FieldError] = []
    taken = {s.id for s in board.scenes}
    for i, scene in enumerate(board.scenes):
        if scene.dialogue is None:
            continue
        at = f"scenes[{i}]."
        errors += [FieldError(at + name, (
            f"a dialogue scene takes its length from its turns and its photos and audio from "
            f"its speakers; remove `{name}`")) for name in NOT_WITH_DIALOGUE
            if getattr(scene, name) is not None]
        own = _check_speakers(at + "dialogue.", scene.dialogue, board.characters)
        own += _check_turns(at + "dialogue.", scene.dialogue)
        if not own:
            _, own = shot_frames(at + "dialogue.", scene.dialogue, board.fps)
            ids = shot_ids(scene.id, scene.dialogue)
            clash = sorted(taken & set(ids))
            if clash or max(map(len, ids)) > 64:
                own.append(FieldError(at + "id", (
                    f"its shots are named {scene.id}-<turn>-<speaker>: "
                    + (f"{', '.join(clash)} is another scene's id" if clash
                       else f"{max(ids, key=len)} is longer than 64 characters"))))
        errors += own
    return errors


def _speaker_id(s: Speaker) -> str:
    return s.character or s.id or ""


def _check_speakers(at: str, d: DialogueSpec, characters: list[Any]) -> list[FieldError]:
    known = {c.id: c for c in characters}
    errors, seen = [], {}
    for j, s in enumerate(d.speakers):
        p = f"{at}speakers[{j}]."
        if (s.character is None) == (s.id is None):
            errors.append(FieldError(p + "character", (
                "give exactly one of `character` (an id of the film's characters) or `id` "
                "(a speaker of this scene only, with a `photo`)")))
            continue
        sid = _speaker_id(s)
        if sid in seen:
            errors.append(FieldError(p + ("character" if s.character else "id"),
                                     f"{sid!r} is also speakers[{seen[sid]}]"))
        seen.setdefault(sid, j)
        if s.character and s.character not in known:
            errors.append(FieldError(p + "character", (
                f"{s.character!r} is not in `characters`; known: "
                f"{', '.join(sorted(known)) or 'none'}")))
        elif s.photo is None and not (s.character and known[s.character].references):
            why = (f"character {s.character!r} has no reference images" if s.character
                   else "a speaker given by `id` needs its photo")
            errors.append(FieldError(p + "photo", f"required: {why}"))
    tracks = [j for j, s in enumerate(d.speakers) if s.audio]
    if d.audio and tracks:
        errors.append(FieldError(at + "audio", (
            "give one mixed track here or a track on every speaker, not both "
            f"(speakers[{tracks[0]}].audio is given)")))
    elif not d.audio and len(tracks) != len(d.speakers):
        missing = ", ".join(f"speakers[{j}].audio" for j, s in enumerate(d.speakers)
                            if not s.audio)
        errors.append(FieldError(at + "audio", (
            f"required: one mixed track here, or a track on every speaker (missing: {missing})")))
    return errors


def _check_turns(at: str, d: DialogueSpec) -> list[FieldError]:
    ids = [_speaker_id(s) for s in d.speakers]
    errors = []
    for k, t in enumerate(d.turns):
        p = f"{at}turns[{k}]."
        if t.speaker not in ids:
            errors.append(FieldError(p + "speaker", (
                f"{t.speaker!r} is not a speaker of this dialogue; speakers: {', '.join(ids)}")))
        if exact(t.end) <= exact(t.start):
            errors.append(FieldError(p + "end", f"{t.end:g} s must be after start {t.start:g} s"))
        if k and exact(t.start) < exact(d.turns[k - 1].end):
            errors.append(FieldError(p + "start", (
                f"{t.start:g} s is before turns[{k - 1}] ends ({d.turns[k - 1].end:g} s): "
                "turns are in order and do not overlap")))
    used = {t.speaker for t in d.turns}
    errors += [FieldError(f"{at}speakers[{j}]", (
        f"{sid!r} has no turn; give it one (a `reaction: true` turn shows it listening) or "
        "remove it")) for j, sid in enumerate(ids) if sid and sid not in used]
    return errors


def shot_ids(scene_id: str, d: DialogueSpec) -> list[str]:
    return [f"{scene_id}-{k + 1}-{t.speaker}" for k, t in enumerate(d.turns)]


def shot_frames(at: str, d: DialogueSpec,
                fps: int) -> tuple[list[tuple[int, int]], list[FieldError]]:
    """Frames [first, stop) of the dialogue for each turn's shot, by the frame rule; an
    error for each shot whose length is not 4k+1, naming the times that would fix it."""
    cuts = [0] + [cut_frame(t.start, fps) for t in d.turns[1:]] + [cut_frame(d.turns[-1].end, fps)]
    layout, errors = list(zip(cuts, cuts[1:], strict=False)), []
    for k, (a, b) in enumerate(layout):
        if is_valid_frame_count(b - a):
            continue
        field = f"turns[{k + 1}].start" if k + 1 < len(d.turns) else f"turns[{k}].end"
        near = or_list(tuple(f"{time_for(a + n, fps)} (frame {a + n})"
                             for n in nearest_frame_counts(max(1, b - a))))
        errors.append(FieldError(at + field, (
            f"turns[{k}]'s shot would be frames {a}..{b - 1} of the dialogue, {b - a} frames at "
            f"{fps} fps (a cut is at the first frame starting at or after the time), not 4k+1 "
            f"as every speech-to-video shot; nearest valid: {near}")))
    return layout, errors


# ---- expansion (resolve_film) ------------------------------------------------------------


@dataclass(frozen=True)
class Expansion:
    """A storyboard with each dialogue scene replaced by its shots (plain S2V scenes)."""

    board: Any
    # Storyboard path of each scene of `board`: "scenes[1]" or "scenes[1].dialogue.turns[0]".
    origins: tuple[str, ...]
    # Shot id -> (its audio for the model: a located slice, the shot).
    shots: dict[str, tuple[str, DialogueShot]]
    errors: tuple[FieldError, ...]

    def attach(self, scene: Any) -> Any:
        """A resolved shot with its sliced audio and what it is of; other scenes as given."""
        from dataclasses import replace

        if scene.id not in self.shots:
            return scene
        voice, shot = self.shots[scene.id]
        return replace(scene, inputs=replace(scene.inputs, audio=voice), dialogue=shot)

    def storyboard_paths(self, errors: list[FieldError]) -> list[FieldError]:
        """Errors of the expanded scenes at their places in the storyboard as written: a
        shot's own fields at its turn, the fields it took from its scene at the scene (once)."""
        def where(path: str) -> str:
            m = re.match(r"^scenes\[(\d+)\](\.(\w+))?", path)
            if m is None or int(m[1]) >= len(self.origins):
                return path
            origin = self.origins[int(m[1])]
            if m[3] not in SHOT_FIELDS:
                origin = origin.split(".dialogue.")[0]
            return origin + path[m.end(1) + 1:]
        out = [FieldError(where(e.path), e.message) for e in errors]
        return list(dict.fromkeys(out))


def speech_families() -> list[str]:
    """Families that render a speaking character from a photo and its audio."""
    return sorted(p.family for p in PROFILES.values() if {"image", "audio"} <= p.requires)


def expand_dialogues(board: Any, profile: ModelProfile, locator: Any) -> Expansion:
    """Each dialogue scene -> one scene per turn (pure; the schema was checked by
    check_dialogues). `locator(field, raw)`: where a worker reads a media input."""
    scenes, origins, shots, errors = [], [], {}, []
    for i, scene in enumerate(board.scenes):
        if scene.dialogue is None:
            scenes.append(scene)
            origins.append(f"scenes[{i}]")
            continue
        at = f"scenes[{i}].dialogue"
        if profile.family not in (families := speech_families()):
            errors.append(FieldError(at, (
                f"a dialogue is rendered by a speech-to-video model (a photo and an audio track "
                f"per shot); the model's family is {profile.family}; allowed: "
                f"{', '.join(families)}")))
            continue
        made, own = _shots(at, scene, board, locator)
        errors += own
        for k, (spec, voice, shot) in enumerate(made):
            scenes.append(spec)
            origins.append(f"{at}.turns[{k}]")
            shots[spec.id] = (voice, shot)
    return Expansion(board.model_copy(update={"scenes": scenes}), tuple(origins), shots,
                     tuple(errors))


def _shots(at: str, scene: Any, board: Any,
           locator: Any) -> tuple[list[tuple[Any, str, DialogueShot]], list[FieldError]]:
    d: DialogueSpec = scene.dialogue
    refs = {c.id: c.references for c in board.characters}
    photos, tracks, errors = {}, {}, []
    for j, s in enumerate(d.speakers):
        photo = s.photo or refs[s.character][0]
        where = f"{at}.speakers[{j}].photo" if s.photo else f"{at}.speakers[{j}].character"
        photos[_speaker_id(s)], err = photo, locator("image", photo)[1]
        errors += [FieldError(where, err)] if err else []
        if s.audio:
            tracks[_speaker_id(s)], err = locator("audio", s.audio)
            errors += [FieldError(f"{at}.speakers[{j}].audio", err)] if err else []
    mixed, err = locator("audio", d.audio) if d.audio else (None, None)
    errors += [FieldError(f"{at}.audio", err)] if err else []
    layout, frame_errors = shot_frames(at + ".", d, board.fps)
    if errors or frame_errors:
        return [], errors + frame_errors
    raw = {_speaker_id(s): s.audio for s in d.speakers}
    cast = {s.character for s in d.speakers if s.character}
    out = []
    for k, (turn, sid, (a, b)) in enumerate(zip(d.turns, shot_ids(scene.id, d), layout,
                                                 strict=True)):
        own = mixed or tracks[turn.speaker]
        sound = (mixed,) if mixed else tuple(tracks.values())
        spec = scene.model_copy(update={
            "id": sid, "frames": b - a, "image": photos[turn.speaker], "seed": scene.seed + k,
            "audio": d.audio or raw[turn.speaker], "dialogue": None,
            # a film character: its description and adapters reach the shot (farm.spec.characters)
            "characters": [turn.speaker] if turn.speaker in cast else None})
        shot = DialogueShot(scene.id, f"{at}.turns[{k}]", k, turn.speaker, turn.reaction, a, b,
                            str(exact(turn.end)),
                            tuple(audio_slice(t, a, b, board.fps) for t in sound))
        out.append((spec, audio_slice(own, a, b, board.fps, silent=turn.reaction), shot))
    return out, []


def count_scenes(scenes: Sequence[Any]) -> str:
    """"3 scenes", or, when dialogues became shots, "2 scenes (1 dialogue: 3 shots)": what
    the storyboard wrote, then what renders (resolved scenes, each with its `dialogue`)."""
    shots = Counter(s.dialogue.dialogue for s in scenes if s.dialogue is not None)
    written = sum(s.dialogue is None for s in scenes) + len(shots)
    text = f"{written} scene{'s' * (written != 1)}"
    if shots:
        text += f" ({len(shots)} dialogue{'s' * (len(shots) != 1)}: {sum(shots.values())} shots)"
    return text
