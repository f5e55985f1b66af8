"""The family registry: every family is complete in both halves (the pure profile in
farm.spec.profiles, the torch Family in farm.model.families), and a tiny model of each
builds, saves, and is recognised back as its family."""

from __future__ import annotations

import inspect

import pytest
import torch

from farm.model.families import FAMILIES, Family, family
from farm.model.families.base import FolderConfigs
from farm.model.inputs import MediaInputs
from farm.model.loader import BUILTIN_MODELS, ModelLoader, resolve_model
from farm.model.tiny import TINY_KINDS
from farm.spec.profiles import PROFILES, ModelProfile

pytestmark = pytest.mark.model


def test_the_pure_and_torch_halves_list_the_same_families():
    assert list(FAMILIES) == list(PROFILES)
    assert TINY_KINDS == tuple(FAMILIES)
    assert [m for m in BUILTIN_MODELS if m.startswith("tiny-")] == [f"tiny-{k}" for k in FAMILIES]
    ranks = [f.detect_rank for f in FAMILIES.values()]
    assert len(set(ranks)) == len(ranks), "detection order must be total"


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_is_complete(name):
    fam = family(name)
    assert isinstance(fam, Family) and not inspect.isabstract(type(fam))
    # the pure half
    p = fam.profile
    assert isinstance(p, ModelProfile) and p is PROFILES[name] and fam.name == name
    assert len(p.experts) == len(p.boundaries) + 1 == len(p.guidance)
    assert p.size_multiple % (p.vae_spatial * p.patch) == 0 and p.max_side >= 0
    # the torch half
    assert isinstance(fam.detect_rank, int)
    assert issubclass(fam.inputs, MediaInputs)
    assert issubclass(fam.transformer_class(), torch.nn.Module)


def test_unknown_families_are_named():
    with pytest.raises(ValueError, match="unknown model family 'x'; known families: t2v-a14b"):
        family("x")


@pytest.mark.parametrize("name", list(FAMILIES))
def test_a_tiny_model_of_each_family_builds_and_is_detected_back(name, tiny_dirs):
    fam = family(name)
    expert = fam.build_transformer("transformer", seed=0)
    assert isinstance(expert, fam.transformer_class())
    folder = tiny_dirs(name)
    source = resolve_model(folder)
    assert source.family == name
    assert resolve_model(f"tiny-{name}").family == name
    # the folder's expert loads as the tiny one built in memory
    loaded = ModelLoader(source).expert(fam.profile.experts[0])
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                 expert.state_dict().values(), strict=True))


def test_detection_keeps_its_order(tmp_path):
    """A folder several tests accept goes to the most specific family (Animate's
    transformer also takes 36 channels, like I2V's)."""
    def configs(index=None, transformer=None, vae=None):
        return FolderConfigs(tmp_path, index or {}, transformer or {}, vae or {})

    from farm.model.families import detect

    assert detect(configs({"boundary_ratio": 0.9}, {"in_channels": 36})) == "i2v-a14b"
    assert detect(configs({"boundary_ratio": 0.9}, {"in_channels": 36,
                                                    "motion_encoder_size": 512})) == "animate-14b"
    assert detect(configs({"boundary_ratio": 0.875})) == "t2v-a14b"
    assert detect(configs({}, {}, {"z_dim": 48})) == "ti2v-5b"
    assert detect(configs({})) is None
    with pytest.raises(ValueError, match="Wan2.1-VACE"):
        detect(configs({"_class_name": "WanVACEPipeline"}))
