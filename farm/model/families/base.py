"""The torch half of a model family: what running it takes beyond its profile.

A family is one module in this package: a Family subclass and `FAMILY = TheFamily()`,
registered in farm/model/families/__init__.py. Its pure half, the ModelProfile (planning
rules, size rule, default limits), is farm.spec.profiles.PROFILES under the same name.

    profile            the pure half
    detect_rank        detection order: lowest first (a family whose test others' folders
                       also pass, such as T2V's "has experts", goes last)
    detect             do a diffusers folder's configs say it is this family
    transformer_class  the class of its experts (diffusers', or our adapter's)
    tiny_transformer   its expert at tiny sizes, random weights
    tiny_vae           its VAE at tiny sizes (default: the Wan2.1 VAE)
    tiny_pipeline      its tiny model as the diffusers pipeline `init-tiny` saves
    inputs             its MediaInputs: a scene's media -> features and clip conditions
    own_folder, load_expert, component_configs, footprint, save_tiny
                       its checkpoint folder's layout (default: diffusers format)
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from farm.model import parts
from farm.model.checkpoint import read_component
from farm.model.inputs import MediaInputs
from farm.spec.limits import Footprint
from farm.spec.profiles import ModelProfile
from farm.spec.weights import weights

# A diffusers-format folder's components that have weights.
COMPONENT_FOLDERS = ("transformer", "transformer_2", "text_encoder", "vae", "image_encoder")
# Footprint.act_bytes -> the run dtype it stands for.
ACT_DTYPE = {2: "bfloat16", 4: "float32"}


@dataclass(frozen=True, slots=True)
class FolderConfigs:
    """What tells families apart in a diffusers-format folder: its configs, not weights."""

    path: Path
    index: dict[str, Any]        # model_index.json
    transformer: dict[str, Any]  # transformer/config.json
    vae: dict[str, Any]          # vae/config.json

    @property
    def pipeline(self) -> str | None:
        return self.index.get("_class_name")

    @property
    def has_experts(self) -> bool:
        """Wan2.2 MoE: two transformers split at `boundary_ratio`."""
        return self.index.get("boundary_ratio") is not None


class Family(ABC):
    profile: ClassVar[ModelProfile]
    detect_rank: ClassVar[int]
    inputs: ClassVar[type[MediaInputs]] = MediaInputs

    @property
    def name(self) -> str:
        return self.profile.family

    @abstractmethod
    def detect(self, configs: FolderConfigs) -> bool:
        """Whether the folder holds this family; may raise ValueError for a variant of
        it the farm does not support (naming what is supported)."""

    @abstractmethod
    def transformer_class(self) -> type[torch.nn.Module]:
        """Imported when asked: diffusers takes seconds to import."""

    @abstractmethod
    def tiny_transformer(self) -> torch.nn.Module:
        """The expert at tiny sizes; called under a seeded RNG (build_transformer)."""

    @abstractmethod
    def tiny_pipeline(self, components: dict[str, Any], seed: int):
        """The diffusers pipeline of the tiny model from its shared components (tokenizer,
        text_encoder, vae, scheduler, transformer[, transformer_2, boundary_ratio])."""

    def tiny_vae(self) -> torch.nn.Module:
        """The VAE at tiny sizes; called under a seeded RNG (build_vae)."""
        return parts.wan21_vae()

    # The tiny model, each component seeded on its own.

    def build_transformer(self, component: str = "transformer", seed: int = 0) -> torch.nn.Module:
        with parts.seeded(parts.component_seed(seed, component)):
            return self.tiny_transformer()

    def build_vae(self, seed: int = 0) -> torch.nn.Module:
        with parts.seeded(parts.component_seed(seed, "vae")):
            return self.tiny_vae()

    def build_pipeline(self, seed: int = 0):
        tokenizer = parts.build_tokenizer()
        components = dict(tokenizer=tokenizer,
                          text_encoder=parts.build_text_encoder(len(tokenizer), seed),
                          vae=self.build_vae(seed), scheduler=parts.build_scheduler(self.profile),
                          transformer=self.build_transformer("transformer", seed))
        if len(self.profile.experts) == 2:
            components["transformer_2"] = self.build_transformer("transformer_2", seed)
            components["boundary_ratio"] = self.profile.boundaries[0]
        return self.tiny_pipeline(components, seed)

    # The checkpoint folder's layout: diffusers format, unless a family overrides these.

    def own_folder(self, path: Path) -> bool:
        """A folder in the family's own (not diffusers) layout."""
        return False

    def load_expert(self, path: Path, subfolder: str, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> torch.nn.Module:
        """One expert at its run dtype on its device, read once (farm.model.checkpoint)."""
        return read_component(self.transformer_class(), path / subfolder, dtype,
                              torch.device(device))

    def component_configs(self, path: Path) -> dict[str, dict[str, Any]]:
        """Each component's config by folder name ("transformer", "text_encoder", ...):
        what farm.spec.weights sizes them from, no weights read."""
        return {name: json.loads((path / name / "config.json").read_text())
                for name in COMPONENT_FOLDERS if (path / name / "config.json").is_file()}

    def footprint(self, path: Path, act_bytes: int) -> Footprint:
        """One expert's weight bytes at the run dtype and hidden sizes, from its config
        (farm.spec.weights: not the files' size, whose dtype may not be the run's)."""
        cfg = self.component_configs(path)["transformer"]
        size = weights(cfg).bytes(ACT_DTYPE[act_bytes])
        dim = int(cfg["num_attention_heads"]) * int(cfg["attention_head_dim"])
        return Footprint(size, dim, int(cfg["ffn_dim"]), act_bytes)

    def save_tiny(self, path: Path, seed: int = 0) -> Path:
        self.build_pipeline(seed).save_pretrained(path)
        return path
