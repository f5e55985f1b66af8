"""The toy model's components: Wan2.2 T2V-A14B's architecture at toy sizes (diffusers classes).

    tokenizer       word level over farm.toy.data.vocabulary() (+ <pad>, </s>, <unk>)
    text_encoder    UMT5EncoderModel, d_model 64, 2 layers (trained with the experts)
    vae             AutoencoderKLWan, base_dim 16, z_dim 16: 8x spatial, 4x temporal
    transformer     WanTransformer3DModel, 4 layers, 4 heads x 32, patch (1, 2, 2): high noise
    transformer_2   the same architecture: low noise (t < boundary * 1000)
    scheduler       UniPC, flow prediction, shift SHIFT (what the experts were trained for)

A 64x64 clip of 17 frames is a (16, 5, 8, 8) latent and 5 * 4 * 4 = 80 transformer tokens.
The folder is a WanPipeline with two experts and `boundary_ratio`, so the farm detects the
t2v-a14b family and splits the experts into high- and low-noise pools.
"""

from __future__ import annotations

from pathlib import Path

import torch

from farm.model import parts
from farm.model.parts import component_seed, seeded
from farm.toy import data

TEXT_DIM = 64
SHIFT = 3.0        # flow shift the experts are trained for (storyboards use `shift: 3`)
BOUNDARY = 0.875   # t2v-a14b's boundary: the high-noise expert owns t >= 875
TEXT_LEN = 512     # the t2v-a14b profile's text length (padding is zeros, as in the farm)


def build_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    vocab = {w: i for i, w in enumerate(specials + data.vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                       special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=TEXT_LEN,
                                   padding_side="right")


def build_text_encoder(vocab_size: int, seed: int = 0):
    return parts.build_text_encoder(vocab_size, seed, dim=TEXT_DIM, head_dim=16, ffn_dim=128,
                                    buckets=16)


def build_vae(seed: int = 0):
    from diffusers import AutoencoderKLWan

    with seeded(component_seed(seed, "vae")):
        return AutoencoderKLWan(base_dim=16, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                                temperal_downsample=[False, True, True],
                                latents_mean=[0.0] * 16, latents_std=[1.0] * 16)


def build_expert(component: str, seed: int = 0):
    from diffusers import WanTransformer3DModel

    with seeded(component_seed(seed, component)):
        return WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=32, in_channels=16,
            out_channels=16, text_dim=TEXT_DIM, freq_dim=256, ffn_dim=512, num_layers=4,
            cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=1024)


def build_scheduler():
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                   num_train_timesteps=1000, flow_shift=SHIFT)


def save_pipeline(directory: str | Path, tokenizer, text_encoder, vae, high, low) -> Path:
    """Write the components as a diffusers WanPipeline folder (safetensors)."""
    from diffusers import WanPipeline

    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder.eval(), vae=vae.eval(),
                       scheduler=build_scheduler(), transformer=high.eval(),
                       transformer_2=low.eval(), boundary_ratio=BOUNDARY)
    path = Path(directory)
    pipe.save_pretrained(path)
    return path


def load_pipeline(directory: str | Path):
    """(text_encoder, vae, high, low) of a folder save_pipeline wrote (float32, eval mode)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5EncoderModel

    path = Path(directory)
    return (UMT5EncoderModel.from_pretrained(path / "text_encoder").eval(),
            AutoencoderKLWan.from_pretrained(path / "vae").eval(),
            WanTransformer3DModel.from_pretrained(path / "transformer").eval(),
            WanTransformer3DModel.from_pretrained(path / "transformer_2").eval())


def encode_prompts(tokenizer, encoder, prompts: list[str], device: torch.device,
                   short: bool = False) -> torch.Tensor:
    """(B, TEXT_LEN, TEXT_DIM) embeddings exactly as farm.model.text.encode_text makes them:
    the real tokens' hidden states, then zeros (the farm pads with zeros, not pad tokens).
    `short`: only one zero token after the longest prompt, for experts inside
    farm.toy.short_text.padded_to(TEXT_LEN), which read it as the same 512 tokens."""
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    tokens = tokenizer([prompt_clean(p) for p in prompts], padding="longest",
                       add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
    hidden = encoder(ids, mask).last_hidden_state * mask[..., None]  # (B, L, D), pads zeroed
    pad = hidden.new_zeros(hidden.size(0), 1 if short else TEXT_LEN - hidden.size(1),
                           hidden.size(2))
    return torch.cat([hidden, pad], dim=1)
