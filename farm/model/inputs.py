"""A scene's media inputs as conditioning, on a VAE worker.

    ImageTask (once per scene)      features every clip reuses + the first clip's Condition
        vace-a14b     reference latents          (farm.model.vace.reference_latents)
        animate-14b   character latents + CLIP   (farm.model.animate.character)
        s2v-14b       reference latent + audio   (farm.model.s2v.condition.scene_features)
    DecodeTask of clip k (chain)    clip k+1's Condition from clip k's last decoded frames
                                    and the scene's features

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
from farm.model import animate, vace
from farm.model.condition import Condition, image_tensor, make_condition
from farm.model.s2v import condition as s2v
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


class InputEncoder:
    """Builds conditioning with one worker's loader (VAE, Animate's image encoder)."""

    def __init__(self, loader, profile: ModelProfile):
        self.loader, self.profile = loader, profile
        self.backend = choose_backend(str(loader.device))

    def scene(self, model: ModelRef, clip: ClipInputs) -> SceneConditioning:
        features = self._features(model, clip)
        return SceneConditioning(self.clip(model, features, clip, None), features)

    def _features(self, model: ModelRef, clip: ClipInputs) -> dict[str, Any]:
        refs = [self._image(loc, None) for loc in clip.inputs.references]
        if self.profile.family == "vace-a14b":
            return {"refs": vace.reference_latents(self.loader.vae(), refs, model.height, model.width)}
        if self.profile.family == "s2v-14b":
            return self._s2v_features(model, clip)
        if self.profile.family == "animate-14b":
            processor, encoder = self.loader.image_encoder()
            patch = tuple(self.loader.transformer_config()["patch_size"][-2:])
            return animate.character(self.loader.vae(), processor, encoder, refs[0],
                                     model.height, model.width, patch)
        return {}

    def clip(self, model: ModelRef, features: dict[str, Any], clip: ClipInputs,
             prev: Carried | None) -> Condition | None:
        """The conditioning of one clip (None: a text-only clip of a TI2V scene)."""
        if self.profile.family == "vace-a14b":
            return self._vace(model, features, clip, prev)
        if self.profile.family == "animate-14b":
            return self._animate(model, features, clip, prev)
        if self.profile.family == "s2v-14b":
            first, n = clip.frame_start // 4, (clip.num_frames - 1) // 4 + 1
            pose = self._s2v_pose(model, clip, first, n) if clip.inputs.pose_video else None
            return s2v.clip_condition(self.loader.vae(), features, clip.fps, first, n,
                                      prev.frames if prev is not None else None, pose)
        return self._first_frame(model, clip, prev)

    def _s2v_pose(self, model: ModelRef, clip: ClipInputs, first: int, n: int) -> torch.Tensor:
        """The clip's pose frames (1, 3, 4n, H, W); before the scene: its first frame."""
        start, stop = s2v.pose_span(first, n)
        frames = decode_video(clip.inputs.pose_video, clip.fps, stop - max(0, start),
                              (model.width, model.height), max(0, start), self.backend,
                              str(self.loader.device))
        frames = np.concatenate([np.repeat(frames[:1], max(0, -start), axis=0), frames])
        return frames_tensor(frames)

    def _s2v_features(self, model: ModelRef, clip: ClipInputs) -> dict[str, Any]:
        """The reference photo (its own size) and the whole audio file (16 kHz mono)."""
        from farm.media.audio import decode_audio
        from farm.model.s2v.audio import SAMPLE_RATE

        extractor, wav2vec = self.loader.audio_encoder()
        samples = decode_audio(clip.inputs.audio, SAMPLE_RATE).mean(axis=0)
        return s2v.scene_features(self.loader.vae(), extractor, wav2vec,
                                  self._image(clip.inputs.image, None), samples, clip.fps,
                                  model.height, model.width)

    def _first_frame(self, model: ModelRef, clip: ClipInputs, prev: Carried | None) -> Condition | None:
        size = (model.width, model.height)
        image = prev.images[-1] if prev is not None else (
            self._image(clip.inputs.image, size) if clip.inputs.image else None)
        if image is None:
            return None
        last = (image_tensor(self._image(clip.inputs.last_image, size))
                if clip.last and clip.inputs.last_image else None)
        return make_condition(self.loader.vae(), image_tensor(image), clip.num_frames,
                              self.profile.expand_timesteps, last)

    def _vace(self, model: ModelRef, features: dict[str, Any], clip: ClipInputs,
              prev: Carried | None) -> Condition:
        size, inputs, n = (model.width, model.height), clip.inputs, clip.num_frames
        control = (frames_tensor(self._video(inputs.control_video, clip, size))
                   if inputs.control_video else None)
        mask = self._mask(inputs.mask, clip, size) if inputs.mask else None
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

    def _animate(self, model: ModelRef, features: dict[str, Any], clip: ClipInputs,
                 prev: Carried | None) -> Condition:
        pose = frames_tensor(self._video(clip.inputs.pose_video, clip, (model.width, model.height)))
        s = self.loader.transformer_config()["motion_encoder_size"]
        face = (frames_tensor(self._video(clip.inputs.face_video, clip, (s, s)))
                if clip.inputs.face_video else -torch.ones(1, 3, clip.num_frames, s, s))
        return animate.clip_condition(self.loader.vae(), features, pose, face,
                                      prev.frames if prev is not None else None, clip.carry)

    def _image(self, location: str, size) -> np.ndarray:
        return decode_image(location, size, self.backend, str(self.loader.device))

    def _video(self, location: str, clip: ClipInputs, size) -> np.ndarray:
        return decode_video(location, clip.fps, clip.num_frames, size, clip.frame_start,
                            self.backend, str(self.loader.device))

    def _mask(self, location: str, clip: ClipInputs, size) -> torch.Tensor:
        """(1, 3, F, H, W) in [0, 1]: an image (every frame) or a video; white = generate."""
        from farm.media.decode import is_image

        if is_image(location):
            frames = np.repeat(self._image(location, size)[None], clip.num_frames, axis=0)
        else:
            frames = self._video(location, clip, size)
        return torch.clamp((frames_tensor(frames) + 1) / 2, min=0, max=1)
