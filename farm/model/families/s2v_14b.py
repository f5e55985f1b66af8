"""Wan2.2-S2V-14B: speech to video, one dense expert. Our own adapter of the published
architecture (farm.model.s2v: diffusers has none), read from the official checkpoint
folder (config.json + the DiT at the top, wav2vec2 beside it): its own layout, not
diffusers', so it is recognised by that layout and never by diffusers configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from farm.engine.orders import ClipInputs, ModelRef
from farm.media.decode import decode_video
from farm.model.condition import Condition
from farm.model.families.base import ACT_DTYPE, Family, FolderConfigs
from farm.model.inputs import Carried, MediaInputs, frames_tensor
from farm.model.parts import (
    build_audio_encoder,
    build_text_encoder,
    build_tokenizer,
)
from farm.model.s2v import condition as s2v
from farm.model.s2v import tiny as s2v_tiny
from farm.model.s2v import weights
from farm.spec.limits import Footprint
from farm.spec.profiles import S2V_14B
from farm.spec.weights import s2v_transformer


class S2VInputs(MediaInputs):
    def features(self, model: ModelRef, clip: ClipInputs) -> dict[str, Any]:
        """The reference photo (its own size) and the whole audio file (16 kHz mono)."""
        from farm.media.audio import decode_audio
        from farm.model.s2v.audio import SAMPLE_RATE

        extractor, wav2vec = self.loader.audio_encoder()
        samples = decode_audio(clip.inputs.audio, SAMPLE_RATE).mean(axis=0)
        return s2v.scene_features(self.loader.vae(), extractor, wav2vec,
                                  self._image(clip.inputs.image, None), samples, clip.fps,
                                  model.height, model.width)

    def clip(self, model: ModelRef, features: dict[str, Any], clip: ClipInputs,
             prev: Carried | None) -> Condition:
        first, n = clip.frame_start // 4, (clip.num_frames - 1) // 4 + 1  # latent frames
        pose = self._pose(model, clip, first, n) if clip.inputs.pose_video else None
        return s2v.clip_condition(self.loader.vae(), features, clip.fps, first, n,
                                  prev.frames if prev is not None else None, pose)

    def _pose(self, model: ModelRef, clip: ClipInputs, first: int, n: int) -> torch.Tensor:
        """The clip's pose frames (1, 3, 4n, H, W); before the scene: its first frame."""
        start, stop = s2v.pose_span(first, n)
        frames = decode_video(clip.inputs.pose_video, clip.fps, stop - max(0, start),
                              (model.width, model.height), max(0, start), self.backend,
                              str(self.loader.device))
        frames = np.concatenate([np.repeat(frames[:1], max(0, -start), axis=0), frames])
        return frames_tensor(frames)


class S2V14B(Family):
    profile = S2V_14B
    detect_rank = 0  # never claims a diffusers folder (own_folder does)
    inputs = S2VInputs

    def detect(self, configs: FolderConfigs) -> bool:
        return False

    def transformer_class(self):
        from farm.model.s2v.dit import S2VTransformer

        return S2VTransformer

    def tiny_transformer(self):
        return s2v_tiny.build_transformer()

    def tiny_pipeline(self, components, seed):
        raise ValueError("S2V has no diffusers pipeline; its tiny model is saved in the "
                         "official layout (init_tiny)")

    def own_folder(self, path: Path) -> bool:
        return weights.is_official_folder(path)

    def load_expert(self, path: Path, subfolder: str, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> torch.nn.Module:
        return weights.load_official(path, dtype, device)  # one dense expert: the DiT at the top

    def component_configs(self, path: Path) -> dict[str, dict[str, Any]]:
        """The official layout: the DiT's config at the top, wav2vec2 beside it."""
        configs = {"transformer": {"_class_name": "WanModel_S2V",
                                   **json.loads((path / "config.json").read_text())}}
        for name, folder in (("text_encoder", "text_encoder"), ("vae", "vae"),
                             ("audio_encoder", weights.WAV2VEC_DIR)):
            if (path / folder / "config.json").is_file():
                configs[name] = json.loads((path / folder / "config.json").read_text())
        return configs

    def footprint(self, path: Path, act_bytes: int) -> Footprint:
        cfg = self.component_configs(path)["transformer"]
        size = s2v_transformer(cfg).bytes(ACT_DTYPE[act_bytes])
        return Footprint(size, int(cfg["dim"]), int(cfg["ffn_dim"]), act_bytes)

    def save_tiny(self, path: Path, seed: int = 0) -> Path:
        tokenizer = build_tokenizer()
        return s2v_tiny.write_folder(path, {
            "transformer": self.build_transformer("transformer", seed),
            "audio_encoder": build_audio_encoder(seed), "vae": self.build_vae(seed),
            "text_encoder": build_text_encoder(len(tokenizer), seed), "tokenizer": tokenizer})


FAMILY = S2V14B()
