"""Continuity across cuts: a scene that starts from an earlier scene's last frame (pure).

    scenes:  s010 ──────────┐            s020 (independent: renders meanwhile)
                            │ last delivered frame (uint8, as a PNG would hold it)
                            ▼
             s030  start_from: s010      = s030 rendered with `image:` that frame

Two stages, like the rest of the spec: `check_start_from` (the storyboard's shape: the
scene exists, comes earlier, no `image:` too, one dependant per scene) and
`check_family` (the model: it must take a first frame). The planner turns the field
into a plan edge (farm.plan.continuity).
"""

from __future__ import annotations

from farm.spec.errors import FieldError
from farm.spec.profiles import PROFILES, ModelProfile


def _why_not(profile: ModelProfile) -> str:
    """Why a family that takes no first frame refuses `start_from` (from its profile, so a
    new family needs nothing here)."""
    if "image" not in profile.conditioning:
        return ("it takes no first frame (`image`): its clips start from text, or from its "
                "own references and previous clip")
    return ("its `image` is the reference photo that leads every clip, not a first frame: a "
            "clip does not begin on it, so the cut would not continue; give the frame as "
            "`image` to use it as the reference photo")


def takes_first_frame(profile: ModelProfile) -> bool:
    """Whether a scene of this family can start from a given frame exactly as from its
    `image:` (the first clip's first frame is that image)."""
    return "image" in profile.conditioning and not profile.motion_frames


def first_frame_families() -> list[str]:
    return sorted(p.family for p in PROFILES.values() if takes_first_frame(p))


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
        if getattr(scene, "image", None):
            errors.append(FieldError(f"scenes[{i}].image", (
                f"scene {scene.id!r} gives both `image` and `start_from`: its first frame is "
                f"the last frame of {source!r}; give one of them")))
    return errors


def check_family(scenes, profile: ModelProfile) -> list[FieldError]:
    """`start_from` needs a family whose scenes take a first frame."""
    if takes_first_frame(profile):
        return []
    why = _why_not(profile)
    return [FieldError(f"scenes[{i}].start_from", (
        f"scene {s.id!r}: {profile.family} cannot start a scene from another's last frame: "
        f"{why}; families that can: {', '.join(first_frame_families())}"))
        for i, s in enumerate(scenes) if getattr(s, "start_from", None)]
