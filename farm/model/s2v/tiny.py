"""Tiny S2V (model "tiny-s2v-14b"): the real architecture at toy sizes, random weights,
built offline; `write_folder` lays it out as the official checkpoint folder."""

from __future__ import annotations

from pathlib import Path

from farm.model.s2v.dit import S2VConfig, S2VTransformer

# dim 24 = 2 heads of 12; audio 8 channels x 3 hidden states (2 wav2vec2 layers)
TINY = S2VConfig(dim=24, ffn_dim=32, heads=2, layers=2, text_dim=32, audio_dim=8,
                 audio_layers=3, audio_tokens=4, audio_inject=(0, 1))


def build_transformer() -> S2VTransformer:
    """Call under a seeded RNG (farm.model.parts.seeded)."""
    return S2VTransformer(TINY).eval()


def build_audio_encoder():
    """(feature extractor, Wav2Vec2ForCTC): wav2vec2's real 320x conv stack (50 Hz
    features from 16 kHz), tiny widths. Call under a seeded RNG."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    cfg = Wav2Vec2Config(vocab_size=32, hidden_size=TINY.audio_dim,
                         num_hidden_layers=TINY.audio_layers - 1,
                         num_attention_heads=2, intermediate_size=16, conv_dim=(8,) * 7,
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                         feat_extract_norm="layer", do_stable_layer_norm=True)
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                         do_normalize=True, return_attention_mask=True)
    return extractor, Wav2Vec2ForCTC(cfg).eval()


def write_folder(path: Path, parts: dict) -> Path:
    """The official layout: DiT config + safetensors with official key names, the
    wav2vec2 folder; VAE, text encoder and tokenizer in diffusers format."""
    from farm.model.s2v.weights import WAV2VEC_DIR, save_official

    save_official(parts["transformer"], path)
    extractor, wav2vec = parts["audio_encoder"]
    extractor.save_pretrained(path / WAV2VEC_DIR)
    wav2vec.save_pretrained(path / WAV2VEC_DIR)
    parts["vae"].save_pretrained(path / "vae")
    parts["text_encoder"].save_pretrained(path / "text_encoder")
    parts["tokenizer"].save_pretrained(path / "tokenizer")
    return path
