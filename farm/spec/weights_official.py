"""The official Wan2.2 checkpoints' component configs, as data (farm.spec.weights counts
their parameters). Each is the config.json its library writes, trimmed to what sizes
the component; values are the published ones (the Wan-AI repos' configs, diffusers'
class defaults for them, research/anchors_inference.md 1.2) unless marked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.spec import profiles

A14B = {"_class_name": "WanTransformer3DModel", "patch_size": [1, 2, 2],
        "num_attention_heads": 40, "attention_head_dim": 128, "in_channels": 16,
        "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 13824,
        "num_layers": 40, "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6, "image_dim": None, "added_kv_proj_dim": None, "rope_max_seq_len": 1024,
        "pos_embed_seq_len": None}
I2V_A14B = {**A14B, "in_channels": 36}  # 16 noise + 4 mask + 16 image latent channels
TI2V_5B = {**A14B, "num_attention_heads": 24, "ffn_dim": 14336, "num_layers": 30,
           "in_channels": 48, "out_channels": 48}
VACE_A14B = {**A14B, "_class_name": "WanVACETransformer3DModel",
             "vace_layers": [0, 5, 10, 15, 20, 25, 30, 35], "vace_in_channels": 96}
# Its image cross-attention is Wan2.1-I2V's (add_k_proj / add_v_proj from 5120)
# [inferred from the official architecture; diffusers' class default is None].
ANIMATE_14B = {**A14B, "_class_name": "WanAnimateTransformer3DModel", "in_channels": 36,
               "latent_channels": 16, "image_dim": 1280, "added_kv_proj_dim": 5120,
               "motion_encoder_channel_sizes": None, "motion_encoder_size": 512,
               "motion_style_dim": 512, "motion_dim": 20, "motion_encoder_dim": 512,
               "face_encoder_hidden_dim": 1024, "face_encoder_num_heads": 4,
               "inject_face_latents_blocks": 5}
# farm.model.s2v.weights.official_config of the published sizes (S2VConfig's defaults)
S2V_14B = {"_class_name": "WanModel_S2V", "model_type": "s2v", "dim": 5120, "ffn_dim": 13824,
           "num_heads": 40, "num_layers": 40, "in_dim": 16, "out_dim": 16, "text_len": 512,
           "freq_dim": 256, "audio_dim": 1024, "num_audio_token": 4, "cond_dim": 16,
           "audio_inject_layers": [0, 4, 8, 12, 16, 20, 24, 27, 30, 33, 36, 39]}

UMT5_XXL = {"architectures": ["UMT5EncoderModel"], "model_type": "umt5", "d_model": 4096,
            "d_ff": 10240, "d_kv": 64, "num_heads": 64, "num_layers": 24, "vocab_size": 256384,
            "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32}
WAN21_VAE = {"_class_name": "AutoencoderKLWan", "base_dim": 96, "z_dim": 16,
             "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_scales": [],
             "temperal_downsample": [False, True, True]}
WAN22_VAE = {"_class_name": "AutoencoderKLWan", "base_dim": 160, "decoder_base_dim": 256,
             "z_dim": 48, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_scales": [],
             "temperal_downsample": [False, True, True], "is_residual": True,
             "in_channels": 12, "out_channels": 12, "patch_size": 2, "scale_factor_spatial": 16}
# open-clip xlm-roberta-large-vit-huge-14's vision tower (Animate's image encoder)
CLIP_VIT_H14 = {"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model",
                "hidden_size": 1280, "intermediate_size": 5120, "num_attention_heads": 16,
                "num_hidden_layers": 32, "patch_size": 14, "image_size": 224,
                "projection_dim": 1024}
# wav2vec2-large-xlsr-53-english (S2V's audio encoder)
WAV2VEC2_XLSR = {"architectures": ["Wav2Vec2ForCTC"], "model_type": "wav2vec2",
                 "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                 "num_attention_heads": 16, "conv_bias": True, "feat_extract_norm": "layer",
                 "do_stable_layer_norm": True, "conv_dim": [512] * 7,
                 "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
                 "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16,
                 "vocab_size": 33, "mask_time_prob": 0.05, "mask_feature_prob": 0.0}


@dataclass(frozen=True, slots=True)
class OfficialModel:
    family: str
    repo: str  # the Hugging Face repo it is published as
    # component folder name -> its config
    components: Mapping[str, Mapping[str, Any]]


def _experts(transformer: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {"transformer": transformer, "transformer_2": transformer}


_SHARED = {"text_encoder": UMT5_XXL, "vae": WAN21_VAE}
OFFICIAL: dict[str, OfficialModel] = {m.family: m for m in (
    OfficialModel(profiles.T2V_A14B.family, "Wan-AI/Wan2.2-T2V-A14B-Diffusers",
                  {**_experts(A14B), **_SHARED}),
    OfficialModel(profiles.I2V_A14B.family, "Wan-AI/Wan2.2-I2V-A14B-Diffusers",
                  {**_experts(I2V_A14B), **_SHARED}),
    OfficialModel(profiles.TI2V_5B.family, "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
                  {"transformer": TI2V_5B, "text_encoder": UMT5_XXL, "vae": WAN22_VAE}),
    OfficialModel(profiles.S2V_14B.family, "Wan-AI/Wan2.2-S2V-14B",
                  {"transformer": S2V_14B, **_SHARED, "audio_encoder": WAV2VEC2_XLSR}),
    OfficialModel(profiles.ANIMATE_14B.family, "Wan-AI/Wan2.2-Animate-14B-Diffusers",
                  {"transformer": ANIMATE_14B, **_SHARED, "image_encoder": CLIP_VIT_H14}),
    OfficialModel(profiles.VACE_A14B.family, "alibaba-pai/Wan2.2-VACE-Fun-A14B",
                  {**_experts(VACE_A14B), **_SHARED}),
)}
