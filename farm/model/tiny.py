"""Tiny random-weight Wan models of the real architectures, built offline.

Same classes as the real checkpoints (WanTransformer3DModel, AutoencoderKLWan, UMT5
encoder, a byte-level BPE tokenizer trained in memory), with tiny sizes, so every code
path of the farm runs on a CPU in milliseconds. Weights are seeded per component, so a
worker that builds only the low-noise expert gets the same weights as one that builds
the whole model. Nothing is downloaded.

This module is their entry point by family name. What a family's tiny model is (its
transformer, VAE and pipeline) is its module's in farm.model.families; the parts every
family shares (tokenizer, text encoder, `seeded` construction) are farm.model.parts.
"""

from __future__ import annotations

from pathlib import Path

from farm.model.families import FAMILIES, Family
from farm.model.parts import (
    TEXT_DIM,
    build_audio_encoder,
    build_image_encoder,
    build_scheduler,
    build_text_encoder,
    build_tokenizer,
    component_seed,
    seeded,
)
from farm.spec.profiles import DEFAULT_FAMILY

# Every registered family has a tiny model ("tiny-<family>").
TINY_KINDS = tuple(FAMILIES)

__all__ = ["TEXT_DIM", "TINY_KINDS", "build_audio_encoder", "build_image_encoder",
           "build_pipeline", "build_scheduler", "build_text_encoder", "build_tokenizer",
           "build_transformer", "build_vae", "component_seed", "init_tiny", "seeded"]


def _family(kind: str) -> Family:
    if kind not in FAMILIES:
        raise ValueError(f"unknown tiny model kind {kind!r}; allowed: {', '.join(TINY_KINDS)}")
    return FAMILIES[kind]


def build_transformer(kind: str, component: str = "transformer", seed: int = 0):
    """One expert ("transformer" or "transformer_2") of a family's tiny model."""
    return _family(kind).build_transformer(component, seed)


def build_vae(kind: str, seed: int = 0):
    return _family(kind).build_vae(seed)


def build_pipeline(kind: str, seed: int = 0):
    """The whole tiny model as a diffusers pipeline (what `init-tiny` saves)."""
    return _family(kind).build_pipeline(seed)


def init_tiny(directory: str | Path, kind: str = DEFAULT_FAMILY, seed: int = 0) -> Path:
    """Write a tiny model as a folder in its family's layout (diffusers format but S2V's),
    loadable offline."""
    return _family(kind).save_tiny(Path(directory), seed)
