"""The tiny parts every family shares, and the seeding that makes them reproducible.

Every Wan2.2 family reads prompts with UMT5 and (but TI2V-5B) decodes with the Wan2.1 VAE,
so one tokenizer, one text encoder and one VAE recipe serve them all; a family module
(farm.model.families) brings only its transformer (and its extra encoders). The toy model
(farm.toy) builds its larger components from here too, under the same `seeded` helper:
this module imports no family and no media code, so the toy depends on nothing more.
"""

from __future__ import annotations

import contextlib
import threading

import torch

from farm.spec.profiles import ModelProfile

TEXT_DIM = 32
# Sizes every tiny transformer shares (2 heads of 12, the real block layout); a family adds
# its channels and layers.
TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                   text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32, cross_attn_norm=True,
                   qk_norm="rms_norm_across_heads", rope_max_seq_len=1024)

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
def seeded(seed: int):
    """Build modules inside: their initial weights depend on `seed` alone (not on other
    threads, not on the caller's RNG, which is restored after)."""
    with _RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def component_seed(seed: int, component: str) -> int:
    """Each component its own seed: a worker that builds only the low-noise expert gets
    the weights of one that builds the whole model."""
    order = ("text_encoder", "transformer", "transformer_2", "vae", "image_encoder",
             "audio_encoder")
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
    tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                       special_tokens=[("</s>", eos)])
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
    with seeded(component_seed(seed, "text_encoder")):
        return UMT5EncoderModel(cfg).eval()


def wan21_vae():
    """The Wan2.1 VAE (x8 spatial, 16 channels) at tiny widths; call under `seeded`."""
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True]).eval()


def build_image_encoder(seed: int = 0):
    """A CLIP vision tower and its processor (diffusers' test sizes: 4x4 images), for the
    families that embed a character image (Animate)."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2,
                           num_attention_heads=2, image_size=4, intermediate_size=16, patch_size=1)
    with seeded(component_seed(seed, "image_encoder")):
        encoder = CLIPVisionModel(cfg).eval()
    return CLIPImageProcessor(crop_size=4, size=4), encoder


def build_audio_encoder(seed: int = 0):
    """wav2vec2 (feature extractor, Wav2Vec2ForCTC) at tiny sizes, for the families that
    listen to a scene's audio (S2V)."""
    from farm.model.s2v import tiny as s2v_tiny

    with seeded(component_seed(seed, "audio_encoder")):
        return s2v_tiny.build_audio_encoder()


def build_scheduler(profile: ModelProfile):
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                   num_train_timesteps=1000, flow_shift=profile.shift)
