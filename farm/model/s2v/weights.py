"""The official Wan2.2-S2V-14B checkpoint folder, read from local disk.

    Wan2.2-S2V-14B/
      config.json                               WanModel_S2V's config ("model_type": "s2v")
      diffusion_pytorch_model*.safetensors      the DiT, official key names (+ index json)
      wav2vec2-large-xlsr-53-english/           the audio encoder (transformers format)
      vae/, text_encoder/, tokenizer/           the Wan2.1 VAE and UMT5-XXL in diffusers
                                                format (see `components`)

Official key names map to ours by the rules below (`to_ours`); every key of the file
must map and every parameter of ours must be given, or loading fails naming them.
Only the options Wan2.2-S2V-14B ships with are implemented (`SUPPORTED`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from farm.model.checkpoint import read_safetensors, realign
from farm.model.s2v.dit import S2VConfig, S2VTransformer

WAV2VEC_DIR = "wav2vec2-large-xlsr-53-english"

# (official name pattern, ours); first match wins.
KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"patch_embedding\.", "patch_in."),
    (r"cond_encoder\.", "pose_in."),
    (r"text_embedding\.", "text_in."),
    (r"time_embedding\.", "time_in."),
    (r"time_projection\.", "time_mod."),
    (r"trainable_cond_mask\.", "segment_embed."),
    (r"blocks\.(\d+)\.self_attn\.", r"blocks.\1.attn."),
    (r"blocks\.(\d+)\.cross_attn\.", r"blocks.\1.text_attn."),
    (r"blocks\.(\d+)\.norm3\.", r"blocks.\1.text_norm."),
    (r"blocks\.(\d+)\.ffn\.", r"blocks.\1.mlp."),
    (r"blocks\.(\d+)\.modulation$", r"blocks.\1.mod"),
    (r"head\.head\.", "head."),
    (r"head\.modulation$", "head_mod"),
    (r"casual_audio_encoder\.weights$", "audio.layer_weights"),
    (r"casual_audio_encoder\.encoder\.conv1_local\.conv\.", "audio.local_in."),
    (r"casual_audio_encoder\.encoder\.conv1_global\.conv\.", "audio.global_in."),
    (r"casual_audio_encoder\.encoder\.conv2\.conv\.", "audio.down1."),
    (r"casual_audio_encoder\.encoder\.conv3\.conv\.", "audio.down2."),
    (r"casual_audio_encoder\.encoder\.final_linear\.", "audio.global_out."),
    (r"casual_audio_encoder\.encoder\.padding_tokens$", "audio.pad_token"),
    (r"audio_injector\.injector\.(\d+)\.", r"audio_inject.\1.attn."),
    (r"audio_injector\.injector_adain_layers\.(\d+)\.linear\.", r"audio_inject.\1.adain."),
    (r"frame_packer\.proj\.", "motion.post."),
    (r"frame_packer\.proj_2x\.", "motion.x2."),
    (r"frame_packer\.proj_4x\.", "motion.x4."),
)

# The official options this adapter implements (Wan2.2-S2V-14B's values).
SUPPORTED = {"model_type": "s2v", "enable_adain": True, "adain_mode": "attn_norm",
             "zero_timestep": True, "enable_motioner": False, "enable_framepack": True,
             "framepack_drop_mode": "padd", "add_last_motion": True,
             "trainable_token_pos_emb": False, "enable_tsm": False}


def to_ours(key: str) -> str:
    for pattern, ours in KEY_RULES:
        if re.match(pattern, key):
            return re.sub("^" + pattern, ours, key)
    raise KeyError(key)


def to_official(key: str) -> str:
    """Inverse of `to_ours` (writing a checkpoint in the official layout)."""
    for pattern, ours in KEY_RULES:
        mine = (re.escape(ours).replace(re.escape(r"\1"), r"(\d+)")
                + ("$" if pattern.endswith("$") else ""))
        theirs = pattern.rstrip("$").replace(r"(\d+)", r"\1").replace("\\.", ".")
        if re.match(mine, key):
            return re.sub("^" + mine, theirs, key)
    raise KeyError(key)


def config_from_official(cfg: dict) -> S2VConfig:
    """Our config from WanModel_S2V's config.json; ValueError naming any unsupported option."""
    bad = {k: cfg[k] for k, v in SUPPORTED.items() if k in cfg and cfg[k] != v}
    if bad:
        raise ValueError(f"unsupported WanModel_S2V options {bad}; this adapter implements "
                         f"{SUPPORTED} (Wan2.2-S2V-14B)")
    d = S2VConfig()
    return S2VConfig(
        dim=cfg.get("dim", d.dim), ffn_dim=cfg.get("ffn_dim", d.ffn_dim),
        heads=cfg.get("num_heads", d.heads), layers=cfg.get("num_layers", d.layers),
        in_dim=cfg.get("in_dim", d.in_dim), out_dim=cfg.get("out_dim", d.out_dim),
        # text_dim is not saved by the official class (ignore_for_config): UMT5-XXL's 4096
        text_dim=cfg.get("text_dim", d.text_dim), text_len=cfg.get("text_len", d.text_len),
        freq_dim=cfg.get("freq_dim", d.freq_dim), eps=cfg.get("eps", d.eps),
        audio_dim=cfg.get("audio_dim", d.audio_dim),
        audio_layers=cfg.get("audio_layers", d.audio_layers),  # ours; official: fixed 25
        audio_tokens=cfg.get("num_audio_token", d.audio_tokens),
        audio_inject=tuple(cfg.get("audio_inject_layers", d.audio_inject)),
        pose_dim=cfg.get("cond_dim", d.pose_dim),
        motion_frames=cfg.get("motion_frames", d.motion_frames))


def official_config(c: S2VConfig) -> dict:
    return {"_class_name": "WanModel_S2V", **SUPPORTED, "dim": c.dim, "ffn_dim": c.ffn_dim,
            "num_heads": c.heads, "num_layers": c.layers, "in_dim": c.in_dim, "out_dim": c.out_dim,
            "text_len": c.text_len, "freq_dim": c.freq_dim, "eps": c.eps, "audio_dim": c.audio_dim,
            "num_audio_token": c.audio_tokens, "audio_inject_layers": list(c.audio_inject),
            "cond_dim": c.pose_dim, "zero_init": True, "motion_token_num": 1024,
            "text_dim": c.text_dim, "audio_layers": c.audio_layers,
            "motion_frames": c.motion_frames}


def is_official_folder(path: Path) -> bool:
    try:
        return json.loads((path / "config.json").read_text()).get("model_type") == "s2v"
    except (OSError, ValueError, AttributeError):
        return False


def load_official(path: Path, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> S2VTransformer:
    """The DiT from an official folder at `dtype` on `device` (built on the meta device and
    each tensor converted as it is read: a 14B model is never allocated twice)."""
    with torch.device("meta"):
        model = S2VTransformer(config_from_official(json.loads((path / "config.json").read_text())))
    files = sorted(path.glob("diffusion_pytorch_model*.safetensors"))
    if not files:
        raise ValueError(f"{path}: no diffusion_pytorch_model*.safetensors")
    load_official_state(model, read_safetensors(files, dtype, device))
    return realign(model, dtype).eval()


def load_official_state(model: S2VTransformer, theirs: dict[str, torch.Tensor]) -> None:
    ours, unknown = {}, []
    for k, v in theirs.items():
        try:
            ours[to_ours(k)] = v
        except KeyError:
            unknown.append(k)
    missing = sorted(set(model.state_dict()) - set(ours))
    if unknown or missing:
        raise ValueError(f"checkpoint does not match WanModel_S2V: unknown keys {unknown[:5]}, "
                         f"missing {[to_official(k) for k in missing[:5]]}")
    model.load_state_dict(ours, assign=True)


def save_official(model: S2VTransformer, path: Path) -> None:
    """Write config.json + diffusion_pytorch_model.safetensors with the official names."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(official_config(model.config), indent=2))
    state = {to_official(k): v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "diffusion_pytorch_model.safetensors"))
