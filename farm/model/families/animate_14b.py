"""Wan2.2-Animate-14B: a character image brought to life by a pose video (and a face
video), one dense expert (WanAnimateTransformer3DModel); the conditioning is diffusers'
WanAnimatePipeline's (farm.model.animate)."""

from __future__ import annotations

from typing import Any

import torch

from farm.engine.orders import ClipInputs, ModelRef
from farm.model import animate
from farm.model.condition import Condition
from farm.model.families.base import Family, FolderConfigs
from farm.model.inputs import Carried, MediaInputs, frames_tensor
from farm.model.parts import TRANSFORMER, build_image_encoder
from farm.spec.profiles import ANIMATE_14B

# The face video is cropped to this square size (512 in the real model).
TINY_FACE_SIZE = 16


class AnimateInputs(MediaInputs):
    def features(self, model: ModelRef, clip: ClipInputs) -> dict[str, Any]:
        """The character's latents and CLIP embedding, once per scene."""
        processor, encoder = self.loader.image_encoder()
        patch = tuple(self.loader.transformer_config()["patch_size"][-2:])
        character = self._image(clip.inputs.references[0], None)
        return animate.character(self.loader.vae(), processor, encoder, character,
                                 model.height, model.width, patch)

    def clip(self, model: ModelRef, features: dict[str, Any], clip: ClipInputs,
             prev: Carried | None) -> Condition:
        pose = frames_tensor(self._video(clip.inputs.pose_video, clip, (model.width, model.height)))
        s = self.loader.transformer_config()["motion_encoder_size"]
        # without a face video the face is "none" (-1), as the unconditional forward's
        face = (frames_tensor(self._video(clip.inputs.face_video, clip, (s, s)))
                if clip.inputs.face_video else -torch.ones(1, 3, clip.num_frames, s, s))
        return animate.clip_condition(self.loader.vae(), features, pose, face,
                                      prev.frames if prev is not None else None, clip.carry)


class Animate14B(Family):
    profile = ANIMATE_14B
    detect_rank = 10
    inputs = AnimateInputs

    def detect(self, configs: FolderConfigs) -> bool:
        return (configs.pipeline == "WanAnimatePipeline"
                or "motion_encoder_size" in configs.transformer)

    def transformer_class(self):
        from diffusers import WanAnimateTransformer3DModel

        return WanAnimateTransformer3DModel

    def tiny_transformer(self):
        # diffusers' tests/pipelines/wan/test_wan_animate.py sizes
        return self.transformer_class()(
            in_channels=36, latent_channels=16, out_channels=16, num_layers=2, image_dim=4,
            motion_encoder_channel_sizes={"4": 16, "8": 16, "16": 16},
            motion_encoder_size=TINY_FACE_SIZE, motion_style_dim=8, motion_dim=4,
            motion_encoder_dim=16, face_encoder_hidden_dim=16, face_encoder_num_heads=2,
            inject_face_latents_blocks=2, **TRANSFORMER).eval()

    def tiny_pipeline(self, components, seed):
        from diffusers import WanAnimatePipeline

        processor, encoder = build_image_encoder(seed)
        return WanAnimatePipeline(image_processor=processor, image_encoder=encoder, **components)


FAMILY = Animate14B()
