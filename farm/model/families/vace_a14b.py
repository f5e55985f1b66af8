"""Wan2.2-VACE-Fun-A14B: the T2V-A14B experts with VACE control blocks
(WanVACETransformer3DModel): reference images, a control video and masks, first / last
frames and clip extension all enter as one control stream (farm.model.vace)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from farm.engine.orders import ClipInputs, ModelRef
from farm.media.decode import is_image
from farm.model import vace
from farm.model.condition import Condition
from farm.model.families.base import Family, FolderConfigs
from farm.model.inputs import Carried, MediaInputs, frames_tensor
from farm.model.parts import TRANSFORMER
from farm.spec.profiles import VACE_A14B


class VaceInputs(MediaInputs):
    def features(self, model: ModelRef, clip: ClipInputs) -> dict[str, Any]:
        """The reference images' latents, once per scene (a latent frame each)."""
        refs = [self._image(loc, None) for loc in clip.inputs.references]
        return {"refs": vace.reference_latents(self.loader.vae(), refs, model.height, model.width)}

    def clip(self, model: ModelRef, features: dict[str, Any], clip: ClipInputs,
             prev: Carried | None) -> Condition:
        size, inputs, n = (model.width, model.height), clip.inputs, clip.num_frames
        control = (frames_tensor(self._video(inputs.control_video, clip, size))
                   if inputs.control_video else None)
        mask = self._mask(inputs.mask, clip, size) if inputs.mask else None
        # frames the clip must show as given: first / last images, the carried frames
        known: dict[int, torch.Tensor] = {}
        if clip.first and inputs.image:
            known[0] = frames_tensor(self._image(inputs.image, size)[None])[0, :, 0]
        if prev is not None:
            known |= {i: frames_tensor(im[None])[0, :, 0] for i, im in enumerate(prev.images)}
        if clip.last and inputs.last_image:
            known[n - 1] = frames_tensor(self._image(inputs.last_image, size)[None])[0, :, 0]
        video, m = vace.clip_frames(n, model.height, model.width, control, mask, known)
        layers = len(self.loader.transformer_config()["vace_layers"])
        return vace.clip_condition(self.loader.vae(), video, m, features["refs"], layers)

    def _mask(self, location: str, clip: ClipInputs, size) -> torch.Tensor:
        """(1, 3, F, H, W) in [0, 1]: an image (every frame) or a video; white = generate."""
        if is_image(location):
            frames = np.repeat(self._image(location, size)[None], clip.num_frames, axis=0)
        else:
            frames = self._video(location, clip, size)
        return torch.clamp((frames_tensor(frames) + 1) / 2, min=0, max=1)


class VaceA14B(Family):
    profile = VACE_A14B
    detect_rank = 20
    inputs = VaceInputs

    def detect(self, configs: FolderConfigs) -> bool:
        if not (configs.pipeline == "WanVACEPipeline" or "vace_layers" in configs.transformer):
            return False
        if not configs.has_experts:
            raise ValueError(f"{configs.path}: a VACE model with one transformer (Wan2.1-VACE) is "
                             "not supported; Wan2.2-VACE-Fun-A14B (two experts) is")
        return True

    def transformer_class(self):
        from diffusers import WanVACETransformer3DModel

        return WanVACETransformer3DModel

    def tiny_transformer(self):
        # control blocks after layers 0 and 2; control input 96 = 16 + 16 + 64 (mask packed)
        return self.transformer_class()(in_channels=16, out_channels=16, num_layers=3,
                                        vace_layers=[0, 2], vace_in_channels=96,
                                        **TRANSFORMER).eval()

    def tiny_pipeline(self, components, seed):
        from diffusers import WanVACEPipeline

        return WanVACEPipeline(**components)


FAMILY = VaceA14B()
