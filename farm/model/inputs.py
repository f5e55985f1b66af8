"""A scene's media inputs as conditioning, on a VAE worker.

    ImageTask (once per scene)      features every clip reuses + the first clip's Condition
    DecodeTask of clip k (chain)    clip k+1's Condition from clip k's last decoded frames
                                    and the scene's features

What the features and conditions are is the family's: each family module
(farm.model.families) names its MediaInputs subclass; this base class is the first-frame
families' (T2V, I2V, TI2V: a first and last image, or the previous clip's last frame).
Media are decoded for each clip at the scene's size and frame rate (farm.media.decode:
DALI on a CUDA worker that has it, else PyAV / Pillow), only the frames of that clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from farm.engine.orders import ClipInputs, ModelRef
from farm.media.decode import choose_backend, decode_image, decode_video
from farm.model.condition import Condition, image_tensor, make_condition
from farm.spec.profiles import ModelProfile


@dataclass
class Carried:
    """A clip's last decoded frames, for the next clip: as decoded (float, what
    diffusers' Animate carries) and as delivered (uint8, what a user would pass)."""

    frames: torch.Tensor  # (1, 3, p, H, W) in [-1, 1]
    images: list[np.ndarray]  # p x (H, W, 3) uint8


@dataclass
class SceneConditioning:
    """What the ImageTask stores: the first clip's conditioning and the scene's features."""

    first: Condition | None
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        tensors = [t for v in self.features.values() for t in (v if isinstance(v, list) else [v])
                   if isinstance(t, torch.Tensor)]
        return (self.first.nbytes if self.first else 0) + sum(t.numel() * t.element_size()
                                                                for t in tensors)


def frames_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (F, H, W, 3) -> (1, 3, F, H, W) float32 in [-1, 1], as diffusers normalises."""
    x = torch.from_numpy(frames.astype(np.float32) / 255.0).permute(3, 0, 1, 2).unsqueeze(0)
    return 2.0 * x - 1.0


class MediaInputs:
    """A family's encoder of scene media, with one worker's loader (its VAE, and the
    family's own encoders). This base class: the first-frame families."""

    def __init__(self, loader, profile: ModelProfile):
        self.loader, self.profile = loader, profile
        self.backend = choose_backend(str(loader.device))

    def scene(self, model: ModelRef, clip: ClipInputs) -> SceneConditioning:
        features = self.features(model, clip)
        return SceneConditioning(self.clip(model, features, clip, None), features)

    def features(self, model: ModelRef, clip: ClipInputs) -> dict[str, Any]:
        """What every clip of the scene reuses, encoded once (here: nothing)."""
        return {}

    def clip(self, model: ModelRef, features: dict[str, Any], clip: ClipInputs,
             prev: Carried | None) -> Condition | None:
        """The conditioning of one clip (None: a text-only clip)."""
        return self._first_frame(model, clip, prev)

    def _first_frame(self, model: ModelRef, clip: ClipInputs,
                     prev: Carried | None) -> Condition | None:
        size = (model.width, model.height)
        image = prev.images[-1] if prev is not None else (
            self._image(clip.inputs.image, size) if clip.inputs.image else None)
        if image is None:
            return None
        last = (image_tensor(self._image(clip.inputs.last_image, size))
                if clip.last and clip.inputs.last_image else None)
        return make_condition(self.loader.vae(), image_tensor(image), clip.num_frames,
                              self.profile.expand_timesteps, last)

    def _image(self, location: str, size) -> np.ndarray:
        return decode_image(location, size, self.backend, str(self.loader.device))

    def _video(self, location: str, clip: ClipInputs, size) -> np.ndarray:
        return decode_video(location, clip.fps, clip.num_frames, size, clip.frame_start,
                            self.backend, str(self.loader.device))


class InputEncoder:
    """A worker's encoder of scene media: its model family's MediaInputs (the loader
    knows the family: farm.model.families)."""

    def __init__(self, loader, profile: ModelProfile):
        self.family = loader.family.inputs(loader, profile)

    def scene(self, model: ModelRef, clip: ClipInputs) -> SceneConditioning:
        return self.family.scene(model, clip)

    def clip(self, model: ModelRef, features: dict[str, Any], clip: ClipInputs,
             prev: Carried | None) -> Condition | None:
        return self.family.clip(model, features, clip, prev)
