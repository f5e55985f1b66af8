"""Limits a farm enforces at its edge, before any work is queued (CLI and API alike).

Every limit is configurable (`reelfarm serve --limits FILE`, or code) and every breach is
a FieldError naming the field, its value and the limit. The memory check rejects a film
whose windows would not fit a worker at their size, with the estimate, instead of letting
it crash a worker later.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from farm.spec.errors import FieldError
from farm.spec.film import Film
from farm.spec.profiles import PROFILES, ModelProfile

# Each family's own default (ModelProfile.max_side); a family without one has no limit.
DEFAULT_MAX_SIDE = {p.family: p.max_side for p in PROFILES.values() if p.max_side}


@dataclass(frozen=True, slots=True)
class Limits:
    max_scenes: int = 1000
    # 5 minutes per scene and 2 hours per film at 16 fps.
    max_frames_per_scene: int = 4801
    max_frames_per_film: int = 115_201
    max_steps: int = 200
    max_prompt_chars: int = 4000
    max_side: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_SIDE))
    # Memory of one worker (GB) that a window's expert pass must fit in.
    worker_memory_gb: float = 80.0

    def __post_init__(self) -> None:
        for name in ("max_scenes", "max_frames_per_scene", "max_frames_per_film", "max_steps",
                     "max_prompt_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.worker_memory_gb > 0:
            raise ValueError(f"worker_memory_gb must be > 0, got {self.worker_memory_gb}")


@dataclass(frozen=True, slots=True)
class Footprint:
    """What a worker of this model holds: weight bytes of one expert, hidden sizes."""

    weight_bytes: int
    dim: int
    ffn_dim: int
    # Bytes per activation value (2 for bf16/fp16, 4 for fp32).
    act_bytes: int = 2


def check_limits(film: Film, limits: Limits) -> list[FieldError]:
    errors = []
    if len(film.scenes) > limits.max_scenes:
        errors.append(FieldError("scenes",
                                 f"{len(film.scenes)} scenes; the limit is {limits.max_scenes}"))
    if film.num_frames > limits.max_frames_per_film:
        errors.append(FieldError("scenes", f"the film has {film.num_frames} frames; the limit "
                                           f"is {limits.max_frames_per_film}"))
    if film.num_steps > limits.max_steps:
        errors.append(FieldError("steps", f"{film.num_steps}; the limit is {limits.max_steps}"))
    side = limits.max_side.get(film.profile.family)
    for name in ("width", "height"):
        if side is not None and getattr(film, name) > side:
            errors.append(FieldError(name, f"{getattr(film, name)} pixels; {film.profile.family} "
                                           f"renders at most {side}"))
    for s in film.scenes:
        errors += _scene_limits(s, limits)
    return errors


def _scene_limits(scene, limits: Limits) -> list[FieldError]:
    at = f"scenes[{scene.index}]."
    errors = []
    if scene.num_frames > limits.max_frames_per_scene:
        errors.append(FieldError(at + "frames", f"{scene.num_frames}; the limit per scene is "
                                                f"{limits.max_frames_per_scene}"))
    for name in ("prompt", "negative_prompt"):
        text = getattr(scene, name)
        if len(text) > limits.max_prompt_chars:
            errors.append(FieldError(at + name, f"{len(text)} characters; the limit is "
                                                f"{limits.max_prompt_chars}"))
        bad = sorted({f"U+{ord(c):04X}" for c in text
                      if unicodedata.category(c) == "Cc" and c not in "\n\t"})
        if bad:
            errors.append(FieldError(at + name,
                                     f"control characters are not allowed: {', '.join(bad)}"))
    return errors


def window_memory_bytes(film: Film, footprint: Footprint) -> int:
    """Peak memory of one expert pass over the film's largest window (an estimate):
    weights + pass_bytes."""
    window = max(min(s.window, s.num_latent_frames) for s in film.scenes)
    return footprint.weight_bytes + pass_bytes(film.profile, film.width, film.height, window,
                                               footprint)


def pass_bytes(profile: ModelProfile, width: int, height: int, latent_frames: int,
               footprint: Footprint) -> int:
    """What one expert pass over `latent_frames` latent frames at width x height holds
    besides the weights (the estimate the edge check and bench/footprint.py share):
    activations, tokens x (FFN hidden + 6 x model dim) values live at once in a block
    (attention through a flash kernel is linear in tokens), + latents and solver state
    (x4 for UniPC) in float32."""
    p = profile
    per_frame = (height // (p.vae_spatial * p.patch)) * (width // (p.vae_spatial * p.patch))
    tokens = latent_frames * per_frame
    activations = tokens * (footprint.ffn_dim + 6 * footprint.dim) * footprint.act_bytes
    latent = latent_frames * (height // p.vae_spatial) * (width // p.vae_spatial) \
        * p.latent_channels
    return activations + 5 * 4 * latent


def check_memory(film: Film, footprint: Footprint, limits: Limits) -> list[FieldError]:
    need = window_memory_bytes(film, footprint)
    have = limits.worker_memory_gb * 1e9
    if need <= have:
        return []
    return [FieldError("width", (
        f"{film.width}x{film.height} with windows of up to "
        f"{max(s.window for s in film.scenes)} latent frames needs about {need / 1e9:.1f} GB per "
        f"worker (weights {footprint.weight_bytes / 1e9:.1f} GB + activations); workers have "
        f"{limits.worker_memory_gb:g} GB. Render smaller, or with shorter windows"))]
