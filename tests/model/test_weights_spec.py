"""farm.spec.weights (pure) counts what the real modules hold: each official config's
component is built on the meta device (no memory) and its parameters counted."""

from __future__ import annotations

import pytest
import torch

from farm.model.checkpoint import fp32_modules
from farm.spec.weights import OFFICIAL, kind_of, weights


def build(config: dict) -> torch.nn.Module:
    """The real module of `config`, on the meta device."""
    kind = kind_of(config)
    with torch.device("meta"):
        if kind == "WanModel_S2V":
            from farm.model.s2v.dit import S2VTransformer
            from farm.model.s2v.weights import config_from_official

            return S2VTransformer(config_from_official(config))
        if kind in ("UMT5EncoderModel", "CLIPVisionModel", "Wav2Vec2ForCTC"):
            import transformers

            conf = {"UMT5EncoderModel": transformers.UMT5Config,
                    "CLIPVisionModel": transformers.CLIPVisionConfig,
                    "Wav2Vec2ForCTC": transformers.Wav2Vec2Config}[kind]
            args = {k: v for k, v in config.items() if k not in ("architectures", "model_type")}
            return getattr(transformers, kind)(conf(**args))
        import diffusers

        return getattr(diffusers, kind).from_config(config)


def counted(module: torch.nn.Module, dtype: torch.dtype) -> tuple[int, int]:
    """(parameters, of them kept in float32 at `dtype` by the library's rule)."""
    keep = fp32_modules(type(module), dtype)
    params = list(module.named_parameters())
    kept = sum(p.numel() for n, p in params if any(k in n.split(".") for k in keep))
    return sum(p.numel() for _, p in params), kept


COMPONENTS = sorted({(f, c) for f, m in OFFICIAL.items() for c in m.components
                     if c != "transformer_2"})


@pytest.mark.parametrize(("family", "component"), COMPONENTS)
def test_counts_equal_the_modules_on_the_meta_device(family, component):
    config = OFFICIAL[family].components[component]
    module = build(dict(config))
    w = weights(config)
    params, kept_bf16 = counted(module, torch.bfloat16)
    assert w.params == params
    assert w.fp32_at_bf16 == kept_bf16
    assert w.fp32_at_fp16 == counted(module, torch.float16)[1]
    if w.blocks:  # the repeated blocks block-level offload streams
        blocks = getattr(module, "blocks", None)
        if blocks is None:  # transformers' encoders
            blocks = getattr(getattr(module, "encoder", module), "block", None) or \
                getattr(getattr(getattr(module, "vision_model", module), "encoder", module),
                        "layers", None) or module.wav2vec2.encoder.layers
        assert sum(p.numel() for p in blocks[0].parameters()) == w.block_params


def test_the_a14b_expert_is_the_published_14b_and_28_5_gb():
    w = weights(OFFICIAL["t2v-a14b"].components["transformer"])
    assert abs(w.params - 14e9) / 14e9 < 0.03
    assert abs(w.bytes("bfloat16") - 28.5e9) / 28.5e9 < 0.03


def test_unknown_configs_and_dtypes_are_named():
    with pytest.raises(ValueError, match="allowed: WanTransformer3DModel"):
        weights({"_class_name": "UNet2DConditionModel"})
    with pytest.raises(ValueError, match="dtype 'int8'; allowed: float32"):
        weights(OFFICIAL["t2v-a14b"].components["vae"]).bytes("int8")
