"""Tiny random-weight Wan models of the real architectures, built offline.

Same classes as the real checkpoints (WanTransformer3DModel, AutoencoderKLWan, UMT5
encoder, a byte-level BPE tokenizer trained in memory), with tiny sizes, so every code
path of the farm runs on a CPU in milliseconds. Weights are seeded per component, so a
worker that builds only the low-noise expert gets the same weights as one that builds
the whole model. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import torch

from farm.spec.profiles import ModelProfile, profile_for

TINY_KINDS = ("t2v-a14b", "i2v-a14b", "ti2v-5b", "animate-14b", "vace-a14b", "s2v-14b")
TEXT_DIM = 32

# A few hundred words of video vocabulary; the byte-level BPE encodes any string anyway.
_CORPUS = (
    "a red fox runs through fresh snow at dawn, camera tracking low",
    "a blue circle moves left on a green background; a yellow square moves right",
    "cinematic close-up of a woman smiling, soft light, shallow depth of field",
    "aerial shot of a city at night with neon signs and rain, slow dolly forward",
    "blurry, low quality, distorted, static, worst quality, jpeg artifacts, watermark",
)


# Module constructors draw their initial weights from torch's process-wide RNG; two
# threads building models at once would interleave draws and get different weights.
_RNG_LOCK = threading.Lock()


@contextlib.contextmanager
def _seeded(seed: int):
    with _RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def component_seed(seed: int, component: str) -> int:
    order = ("text_encoder", "transformer", "transformer_2", "vae", "image_encoder", "audio_encoder")
    return seed * 16 + order.index(component)


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(_CORPUS), trainer=trainer)
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=512, padding_side="right")


def build_text_encoder(vocab_size: int, seed: int = 0, *, dim: int = TEXT_DIM, head_dim: int = 8,
                       ffn_dim: int = 37, buckets: int = 8):
    """A small UMT5 encoder (2 layers, 4 heads); the toy model (farm.toy) sets its sizes."""
    from transformers import UMT5Config, UMT5EncoderModel

    cfg = UMT5Config(vocab_size=vocab_size, d_model=dim, d_kv=head_dim, d_ff=ffn_dim, num_layers=2,
                     num_heads=4, relative_attention_num_buckets=buckets, dropout_rate=0.0,
                     feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1,
                     decoder_start_token_id=0)
    with _seeded(component_seed(seed, "text_encoder")):
        return UMT5EncoderModel(cfg).eval()


# Animate: the face video is cropped to this square size (512 in the real model).
TINY_FACE_SIZE = 16


def build_transformer(kind: str, component: str = "transformer", seed: int = 0):
    from diffusers import (
        WanAnimateTransformer3DModel,
        WanTransformer3DModel,
        WanVACETransformer3DModel,
    )

    common = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                  text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32, cross_attn_norm=True,
                  qk_norm="rms_norm_across_heads", rope_max_seq_len=1024)
    with _seeded(component_seed(seed, component)):
        if kind == "s2v-14b":  # our adapter (farm.model.s2v), not a diffusers class
            from farm.model.s2v import tiny as s2v_tiny

            return s2v_tiny.build_transformer()
        if kind == "animate-14b":  # diffusers' tests/pipelines/wan/test_wan_animate.py sizes
            return WanAnimateTransformer3DModel(
                in_channels=36, latent_channels=16, out_channels=16, num_layers=2, image_dim=4,
                motion_encoder_channel_sizes={"4": 16, "8": 16, "16": 16},
                motion_encoder_size=TINY_FACE_SIZE, motion_style_dim=8, motion_dim=4,
                motion_encoder_dim=16, face_encoder_hidden_dim=16, face_encoder_num_heads=2,
                inject_face_latents_blocks=2, **common).eval()
        if kind == "vace-a14b":  # control blocks after layers 0 and 2 (96 = 16 + 16 + 64)
            return WanVACETransformer3DModel(in_channels=16, out_channels=16, num_layers=3,
                                             vace_layers=[0, 2], vace_in_channels=96, **common).eval()
        in_ch, out_ch = {"t2v-a14b": (16, 16), "i2v-a14b": (36, 16), "ti2v-5b": (48, 48)}[kind]
        return WanTransformer3DModel(in_channels=in_ch, out_channels=out_ch, num_layers=2,
                                     **common).eval()


def build_image_encoder(seed: int = 0):
    """Animate's CLIP vision tower and its processor (diffusers' test sizes: 4x4 images)."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2,
                           num_attention_heads=2, image_size=4, intermediate_size=16, patch_size=1)
    with _seeded(component_seed(seed, "image_encoder")):
        encoder = CLIPVisionModel(cfg).eval()
    return CLIPImageProcessor(crop_size=4, size=4), encoder


def build_audio_encoder(seed: int = 0):
    """S2V's wav2vec2 (feature extractor, Wav2Vec2ForCTC) at tiny sizes."""
    from farm.model.s2v import tiny as s2v_tiny

    with _seeded(component_seed(seed, "audio_encoder")):
        return s2v_tiny.build_audio_encoder()


def build_vae(kind: str, seed: int = 0):
    from diffusers import AutoencoderKLWan

    with _seeded(component_seed(seed, "vae")):
        if kind == "ti2v-5b":  # Wan2.2 VAE: x16 spatial, 48 channels, patchified
            return AutoencoderKLWan(
                base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True,
                patch_size=2, latents_mean=[0.0] * 48, latents_std=[1.0] * 48,
                dim_mult=[1, 1, 1, 1], num_res_blocks=1, scale_factor_spatial=16,
                scale_factor_temporal=4, temperal_downsample=[False, True, True]).eval()
        return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                temperal_downsample=[False, True, True]).eval()


def build_scheduler(profile: ModelProfile):
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                   num_train_timesteps=1000, flow_shift=profile.shift)


def build_pipeline(kind: str, seed: int = 0):
    """The whole tiny model as a diffusers pipeline (what `init-tiny` saves)."""
    from diffusers import WanAnimatePipeline, WanImageToVideoPipeline, WanPipeline, WanVACEPipeline

    if kind not in TINY_KINDS:
        raise ValueError(f"unknown tiny model kind {kind!r}; allowed: {', '.join(TINY_KINDS)}")
    profile = profile_for(kind)
    tokenizer = build_tokenizer()
    parts = dict(tokenizer=tokenizer, text_encoder=build_text_encoder(len(tokenizer), seed),
                 vae=build_vae(kind, seed), scheduler=build_scheduler(profile),
                 transformer=build_transformer(kind, "transformer", seed))
    if len(profile.experts) == 2:
        parts["transformer_2"] = build_transformer(kind, "transformer_2", seed)
        parts["boundary_ratio"] = profile.boundaries[0]
    if kind == "i2v-a14b":
        return WanImageToVideoPipeline(image_processor=None, image_encoder=None, **parts)
    if kind == "animate-14b":
        processor, encoder = build_image_encoder(seed)
        return WanAnimatePipeline(image_processor=processor, image_encoder=encoder, **parts)
    if kind == "vace-a14b":
        return WanVACEPipeline(**parts)
    return WanPipeline(expand_timesteps=profile.expand_timesteps, **parts)


def init_tiny(directory: str | Path, kind: str = "t2v-a14b", seed: int = 0) -> Path:
    """Write a tiny model as a diffusers-format folder, loadable offline."""
    path = Path(directory)
    if kind == "s2v-14b":  # the official folder layout (farm.model.s2v.weights)
        from farm.model.s2v import tiny as s2v_tiny

        tokenizer = build_tokenizer()
        return s2v_tiny.write_folder(path, {
            "transformer": build_transformer(kind, "transformer", seed),
            "audio_encoder": build_audio_encoder(seed), "vae": build_vae(kind, seed),
            "text_encoder": build_text_encoder(len(tokenizer), seed), "tokenizer": tokenizer})
    build_pipeline(kind, seed).save_pretrained(path)
    return path
