"""Continuity across cuts: a scene that starts from an earlier scene's last frame(s) (pure).

    scenes:  s010 ──────────┐            s020 (independent: renders meanwhile)
                            │ last delivered frame(s)
                            ▼
             s030  start_from: s010

How the frames condition s030 is its family's (read from the profile):

    first frame (I2V, TI2V, VACE)   s030 = s030 rendered with `image:` that frame (uint8,
                                    as a PNG would hold it)
    chain continuation (Animate,    s030's first clip = the next clip of a chain after
    S2V: `image` / references are   s010's last one: Animate the last `carry` frames as
    the character, not a frame)     known frames, S2V the 73-frame motion history; its
                                    character stays its own `image` / `references`

Two stages, like the rest of the spec: `check_start_from` (the storyboard's shape: the
scene exists, comes earlier, one dependant per scene) and `check_family` (the model: it
takes a first frame or continues a chain; `image` too only where it is not the first
frame). The planner turns the field into a plan edge (farm.plan.continuity).
"""

from __future__ import annotations

from farm.spec.errors import FieldError
from farm.spec.frames import or_list
from farm.spec.profiles import PROFILES, ModelProfile


def takes_first_frame(profile: ModelProfile) -> bool:
    """Whether a scene of this family can start from a given frame exactly as from its
    `image:` (the first clip's first frame is that image)."""
    return "image" in profile.conditioning and not profile.motion_frames


def continues_chain(profile: ModelProfile) -> bool:
    """Whether a scene of this family starts from another's last frames as the next clip
    of a chain (its `image`, if any, is the character, not a first frame)."""
    return profile.supports_chain and not takes_first_frame(profile)


def can_start_from(profile: ModelProfile) -> bool:
    return takes_first_frame(profile) or continues_chain(profile)


def start_from_families() -> list[str]:
    return sorted(p.family for p in PROFILES.values() if can_start_from(p))


def check_start_from(scenes) -> list[FieldError]:
    """`scenes`: the storyboard's SceneSpecs. Every error names the scene and the field."""
    index = {s.id: i for i, s in reversed(list(enumerate(scenes)))}
    taken: dict[str, int] = {}
    errors = []
    for i, scene in enumerate(scenes):
        source = getattr(scene, "start_from", None)
        if source is None:
            continue
        at = f"scenes[{i}].start_from"
        earlier = [s.id for s in scenes[:i]]
        if source not in index:
            errors.append(FieldError(at, (
                f"scene {scene.id!r} starts from {source!r}, which is not a scene of this film; "
                f"allowed: an earlier scene id ({', '.join(earlier) or 'none: it is the first'})")))
        elif index[source] >= i:
            what = "itself" if source == scene.id else f"{source!r}, which comes later"
            errors.append(FieldError(at, (
                f"scene {scene.id!r} cannot start from {what}: a scene starts from the last frame "
                f"of an earlier scene (no cycles); allowed: {', '.join(earlier) or 'none'}")))
        elif source in taken:
            errors.append(FieldError(at, (
                f"scene {scene.id!r} starts from {source!r}, which scenes[{taken[source]}] "
                "already starts from; a scene's last frame continues one scene")))
        else:
            taken[source] = i
    return errors


def check_family(scenes, profile: ModelProfile, fps: int) -> list[FieldError]:
    """`start_from` needs a family that takes a first frame or continues a chain; a
    first-frame family's `image` would be a second first frame; an Animate-like chain
    carries `carry` frames, so the source must deliver that many (S2V pads its history
    as the official loop does: no minimum)."""
    errors = []
    by_id = {s.id: s for s in scenes}
    for i, s in enumerate(scenes):
        if not getattr(s, "start_from", None):
            continue
        source = by_id.get(s.start_from)
        if not can_start_from(profile):
            errors.append(FieldError(f"scenes[{i}].start_from", (
                f"scene {s.id!r}: {profile.family} cannot start a scene from another's last "
                "frame: it takes no first frame (`image`) and has no chain to continue (its "
                "clips start from text or its own references); families that can: "
                f"{', '.join(start_from_families())}")))
        elif takes_first_frame(profile) and getattr(s, "image", None):
            errors.append(FieldError(f"scenes[{i}].image", (
                f"scene {s.id!r} gives both `image` and `start_from`: its first frame is "
                f"the last frame of {s.start_from!r}; give one of them")))
        elif continues_chain(profile) and not profile.motion_frames and source is not None:
            errors += _carried(i, s, source, profile, fps)
    return errors


def _carried(i: int, scene, source, profile: ModelProfile, fps: int) -> list[FieldError]:
    """The dependant's first clip takes the source's last `carry` frames as known ones."""
    carry = getattr(scene, "carry_frames", None) or profile.carry[0]
    frames = getattr(source, "frames", None)
    if frames is None and getattr(source, "seconds", None) is not None:
        frames = round(source.seconds * fps)
    if frames is None or frames >= carry:
        return []
    fits = tuple(c for c in profile.carry if c <= frames)
    return [FieldError(f"scenes[{i}].start_from", (
        f"scene {scene.id!r} continues {source.id!r} from its last {carry} frames "
        f"(carry_frames), but {source.id!r} has {frames}; allowed: a source of at least "
        f"{carry} frames, or carry_frames: {or_list(fits)}"))]
