"""What a model's weights weigh, from its configs alone (pure: no torch, no weights).

`weights(config)` counts the parameters of one component from the config dict its
library writes (transformer/config.json, text_encoder/config.json, ...), by the
component's class: the Wan transformers (WanTransformer3DModel and its VACE and Animate
variants, S2V's official WanModel_S2V), UMT5, the Wan VAEs, the CLIP vision and wav2vec2
encoders. tests/model/test_weights_spec.py checks every count against the real module
built on the meta device, for every official config in OFFICIAL.

One function for every user: the edge's memory check (farm.model.footprint), the pool
layout check (serving.config), the footprint bench (bench/footprint.py), and the
simulator's expert / text encoder bytes (`part_bytes`, for farm.sim to read).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from farm.spec.weights_official import OFFICIAL

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
OFFLOAD_MODES = ("none", "model", "group", "shard")

# What offloading costs in time, as host -> GPU bandwidths (sources in brackets):
# "model" moves a whole expert in when its phase starts. LightX2V's T2V-A14B 720p run on
# one H100 took 823.5 s without and 839.8 s with model offload, both experts moved in
# once per request (research/anchors_inference.md 3.2): 16.3 s for 2 x 28.5 GB, an
# effective 3.5 GB/s (pageable copies) [inferred].
MODEL_OFFLOAD_BYTES_PER_S = 3.5e9
# "group" streams every block in on every forward from pinned host memory (diffusers
# pins group-offloaded weights): PCIe 4.0 x16, about 25 of its 32 GB/s [assumed]; not
# overlapped with compute here (diffusers' use_stream can hide it), so an upper bound.
GROUP_OFFLOAD_BYTES_PER_S = 25e9
# "shard" moves a whole expert in for a one-GPU phase, as "model"; a gang's ranks copy
# their 1/n of it in once per open gang (farm.model.shard), which no phase pays again.


@dataclass(frozen=True, slots=True)
class Weights:
    """Parameter counts of one component."""

    params: int
    # Of them, those its library keeps in float32 at bfloat16 / float16.
    fp32_at_bf16: int = 0
    fp32_at_fp16: int = 0
    # Its repeated blocks (what block-level offload streams): count and params of one.
    blocks: int = 0
    block_params: int = 0

    def bytes(self, dtype: str) -> int:
        """Bytes at run dtype `dtype` (float32 / bfloat16 / float16)."""
        if dtype not in DTYPE_BYTES:
            raise ValueError(f"dtype {dtype!r}; allowed: {', '.join(DTYPE_BYTES)}")
        kept = {"bfloat16": self.fp32_at_bf16, "float16": self.fp32_at_fp16}.get(dtype, 0)
        return (self.params - kept) * DTYPE_BYTES[dtype] + kept * 4

    def resident_bytes(self, dtype: str, offload: str) -> int:
        """Bytes on the GPU while it runs: all of it, or (group) all but its blocks and
        two of them (the one computing, the next one arriving). Under "shard" all of it
        too: a one-GPU phase moves the whole expert in (a gang's ranks hold less:
        `sharded_bytes`)."""
        if offload not in OFFLOAD_MODES:
            raise ValueError(f"offload {offload!r}; allowed: {', '.join(OFFLOAD_MODES)}")
        total = self.bytes(dtype)
        if offload != "group" or self.blocks < 2:
            return total
        per_block = self.block_params * DTYPE_BYTES[dtype]
        return total - (self.blocks - 2) * per_block

    def sharded_bytes(self, dtype: str, ranks: int) -> int:
        """Bytes on the GPU of one rank of a gang of `ranks` under "shard" offload while a
        block computes: the non-block weights whole, 1/ranks of every block, and two blocks
        gathered whole, the one computing and the next one arriving (FSDP's prefetch;
        between forwards: less those). At T2V-A14B's 40 blocks the non-block weights are
        1.6% of an expert's parameters."""
        if ranks < 1:
            raise ValueError(f"ranks must be at least 1, got {ranks}")
        per_block = self.block_params * DTYPE_BYTES[dtype]
        rest = self.bytes(dtype) - self.blocks * per_block
        return rest + self.blocks * -(-per_block // ranks) + min(2, self.blocks) * per_block


def _linear(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def _wan_block(d: int, ffn: int, cross_norm: bool, added_kv: int | None) -> tuple[int, int]:
    """(params, float32-kept params) of one WanTransformerBlock."""
    attn = 4 * _linear(d, d) + 2 * d            # q k v out + RMS norm_q, norm_k over all heads
    cross = attn + (2 * _linear(added_kv, d) + d if added_kv else 0)  # + image k, v, norm
    norm2 = 2 * d if cross_norm else 0
    table = 6 * d
    return attn + cross + norm2 + _linear(d, ffn) + _linear(ffn, d) + table, norm2 + table


def _check_qk_norm(cfg: Mapping[str, Any]) -> None:
    qk = cfg.get("qk_norm", "rms_norm_across_heads")
    if qk != "rms_norm_across_heads":
        raise ValueError(f"qk_norm {qk!r}; allowed: 'rms_norm_across_heads' (every Wan2.2 "
                         "checkpoint's)")


def wan_transformer(cfg: Mapping[str, Any]) -> Weights:
    """WanTransformer3DModel (and the shared part of its VACE / Animate variants)."""
    _check_qk_norm(cfg)
    d = cfg.get("num_attention_heads", 40) * cfg.get("attention_head_dim", 128)
    patch = math.prod(cfg.get("patch_size", (1, 2, 2)))
    cin = cfg.get("in_channels", 16)
    cout = cfg.get("out_channels", 16) or cin
    freq, text, layers = cfg.get("freq_dim", 256), cfg.get("text_dim", 4096), cfg["num_layers"]
    time_embedder = _linear(freq, d) + _linear(d, d)                  # kept in float32
    top = (2 * d + _linear(cin * patch, d) + time_embedder + _linear(d, 6 * d)
           + _linear(text, d) + _linear(d, d) + _linear(d, cout * patch))
    kept = 2 * d + time_embedder
    image = cfg.get("image_dim")
    if image:  # WanImageEmbedding: norm1, FeedForward(image -> image -> d), norm2
        top += 2 * image + _linear(image, image) + _linear(image, d) + 2 * d
        kept += 2 * image + 2 * d  # its norm1 / norm2 match the kept names
        if cfg.get("pos_embed_seq_len"):
            top += cfg["pos_embed_seq_len"] * image
    block, block_kept = _wan_block(d, cfg.get("ffn_dim", 13824), cfg.get("cross_attn_norm", True),
                                   cfg.get("added_kv_proj_dim"))
    params, kept = top + layers * block, kept + layers * block_kept
    return Weights(params, kept, kept, layers, block)


def wan_vace(cfg: Mapping[str, Any]) -> Weights:
    """WanVACETransformer3DModel: + the control patch embedding and a block per VACE layer
    (the first with an input projection, each with an output one)."""
    base = wan_transformer(cfg)
    d = cfg.get("num_attention_heads", 40) * cfg.get("attention_head_dim", 128)
    patch = math.prod(cfg.get("patch_size", (1, 2, 2)))
    n = len(cfg["vace_layers"])
    block, kept = _wan_block(d, cfg.get("ffn_dim", 13824), cfg.get("cross_attn_norm", True),
                             cfg.get("added_kv_proj_dim"))
    extra = (_linear(cfg.get("vace_in_channels", 96) * patch, d) + _linear(d, d)
             + n * (block + _linear(d, d)))
    return Weights(base.params + extra, base.fp32_at_bf16 + n * kept,
                   base.fp32_at_fp16 + n * kept, base.blocks + n, base.block_params)


# diffusers' WAN_ANIMATE_MOTION_ENCODER_CHANNEL_SIZES (the default of the config's None)
ANIMATE_MOTION_CHANNELS = {"4": 512, "8": 512, "16": 512, "32": 512, "64": 256, "128": 128,
                           "256": 64, "512": 32, "1024": 16}


def wan_animate(cfg: Mapping[str, Any]) -> Weights:
    """WanAnimateTransformer3DModel: + pose patch embedding, motion encoder (StyleGAN-like
    convolutions and linears), face encoder, a face cross-attention every
    `inject_face_latents_blocks` blocks."""
    cfg = {"in_channels": 36, "image_dim": 1280, **cfg}
    base = wan_transformer(cfg)
    heads, hd = cfg.get("num_attention_heads", 40), cfg.get("attention_head_dim", 128)
    d, patch = heads * hd, math.prod(cfg.get("patch_size", (1, 2, 2)))
    pose = _linear(cfg.get("latent_channels", 16) * patch, d)
    style, motion = cfg.get("motion_style_dim", 512), cfg.get("motion_dim", 20)
    motion_out = cfg.get("motion_encoder_dim", 512)
    motion_enc = _animate_motion_encoder(cfg, style, motion, motion_out)
    hidden, fheads = cfg.get("face_encoder_hidden_dim", 1024), cfg.get("face_encoder_num_heads", 4)
    face_enc = (motion_out * hidden * fheads * 3 + hidden * fheads
                + 2 * (hidden * hidden * 3 + hidden) + _linear(hidden, d) + d)
    adapters = cfg["num_layers"] // cfg.get("inject_face_latents_blocks", 5)
    adapter = 4 * _linear(d, d) + 2 * hd      # q k v out + RMS norms over one head
    extra = pose + motion_enc + face_enc + adapters * adapter
    kept = motion * motion_out                  # motion_synthesis_weight
    return Weights(base.params + extra, base.fp32_at_bf16 + kept, base.fp32_at_fp16 + kept,
                   base.blocks, base.block_params)


def _animate_motion_encoder(cfg: Mapping[str, Any], style: int, motion: int, out: int) -> int:
    channels = cfg.get("motion_encoder_channel_sizes") or ANIMATE_MOTION_CHANNELS
    size = cfg.get("motion_encoder_size", 512)
    c = channels[str(size)]
    total = 3 * c + c                           # conv_in 1x1 + its fused bias
    for i in range(int(math.log2(size)), 2, -1):
        o = channels[str(2 ** (i - 1))]
        total += (c * c * 9 + c) + (c * o * 9 + o) + c * o   # conv1, conv2, skip (no bias)
        c = o
    total += c * style * 16                     # conv_out 4x4, no bias
    total += 4 * _linear(style, style) + _linear(style, motion) + out * motion
    return total


def s2v_transformer(cfg: Mapping[str, Any]) -> Weights:
    """The official WanModel_S2V config (farm.model.s2v.weights names; its defaults are
    Wan2.2-S2V-14B's)."""
    d, ffn, layers = cfg.get("dim", 5120), cfg.get("ffn_dim", 13824), cfg.get("num_layers", 40)
    cin, cout, pose = cfg.get("in_dim", 16), cfg.get("out_dim", 16), cfg.get("cond_dim", 16)
    text, freq = cfg.get("text_dim", 4096), cfg.get("freq_dim", 256)
    audio, tokens = cfg.get("audio_dim", 1024), cfg.get("num_audio_token", 4)
    attn = 4 * _linear(d, d) + 2 * d
    block = 2 * attn + 2 * d + _linear(d, ffn) + _linear(ffn, d) + 6 * d
    top = (_linear(cin * 4, d) + _linear(pose * 4, d) + _linear(text, d) + _linear(d, d)
           + _linear(freq, d) + _linear(d, d) + _linear(d, 6 * d) + 3 * d
           + 2 * d + _linear(d, 4 * cout))
    q = d // 4
    audio_enc = (cfg.get("audio_layers", 25) + audio * q * tokens * 3 + q * tokens
                 + audio * q * 3 + q + q * (d // 2) * 3 + d // 2 + (d // 2) * d * 3 + d
                 + _linear(d, d) + d)
    injectors = len(cfg.get("audio_inject_layers", range(12))) * (_linear(d, 2 * d) + attn)
    framepack = sum(cin * d * k + d for k in (4, 32, 256))
    params = top + layers * block + audio_enc + injectors + framepack
    return Weights(params, 0, 0, layers, block)


def umt5_encoder(cfg: Mapping[str, Any]) -> Weights:
    """UMT5EncoderModel: shared embeddings, per layer its own relative attention bias."""
    d, ff, layers = cfg["d_model"], cfg["d_ff"], cfg["num_layers"]
    inner = cfg["num_heads"] * cfg["d_kv"]
    gated = cfg.get("feed_forward_proj", "gated-gelu").startswith("gated")
    ffn = (3 if gated else 2) * d * ff
    block = 4 * d * inner + cfg.get("relative_attention_num_buckets", 32) * cfg["num_heads"] \
        + 2 * d + ffn
    wo = layers * ff * d  # `wo`: kept in float32 at float16 only (transformers' rule)
    return Weights(cfg["vocab_size"] * d + layers * block + d, 0, wo, layers, block)


def wan_vae(cfg: Mapping[str, Any]) -> Weights:
    """AutoencoderKLWan: the Wan2.1 VAE, or (is_residual) the Wan2.2 one."""
    z, mult, res = cfg.get("z_dim", 16), list(cfg.get("dim_mult", [1, 2, 4, 4])), \
        cfg.get("num_res_blocks", 2)
    base = cfg.get("base_dim", 96)
    dec_base = cfg.get("decoder_base_dim") or base
    residual, attn_scales = cfg.get("is_residual", False), cfg.get("attn_scales", [])
    down = list(cfg.get("temperal_downsample", [False, True, True]))
    enc = _vae_encoder(cfg.get("in_channels", 3), base, 2 * z, mult, res, attn_scales, down,
                       residual)
    dec = _vae_decoder(dec_base, z, mult, res, down[::-1], cfg.get("out_channels", 3), residual)
    quant = _conv(2 * z, 2 * z, 1) + _conv(z, z, 1)
    return Weights(enc + dec + quant)


def _conv(i: int, o: int, k: int) -> int:
    return i * o * k + o


def _resblock(i: int, o: int) -> int:
    # RMS norms (gamma), two causal 3x3x3 convs, a 1x1x1 shortcut when the width changes
    return i + _conv(i, o, 27) + o + _conv(o, o, 27) + (_conv(i, o, 1) if i != o else 0)


def _attn_block(d: int) -> int:
    return d + _conv(d, 3 * d, 1) + _conv(d, d, 1)


def _resample(d: int, mode: str, up_out: int | None = None) -> int:
    if mode.startswith("upsample"):
        out = up_out if up_out is not None else d // 2
        return _conv(d, out, 9) + (_conv(d, 2 * d, 3) if mode == "upsample3d" else 0)
    return _conv(d, d, 9) + (_conv(d, d, 3) if mode == "downsample3d" else 0)


def _vae_encoder(cin, base, zout, mult, res, attn_scales, down, residual) -> int:
    dims = [base * u for u in [1, *mult]]
    total, scale, last = _conv(cin, dims[0], 27), 1.0, len(mult) - 1
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        for r in range(res):
            total += _resblock(a if r == 0 else b, b)
            if not residual and scale in attn_scales:
                total += _attn_block(b)
        if i != last:
            total += _resample(b, "downsample3d" if down[i] else "downsample2d")
            scale /= 2.0
    out = dims[-1]
    return total + 2 * _resblock(out, out) + _attn_block(out) + out + _conv(out, zout, 27)


def _vae_decoder(base, z, mult, res, up, cout, residual) -> int:
    dims = [base * u for u in [mult[-1], *mult[::-1]]]
    total = _conv(z, dims[0], 27) + 2 * _resblock(dims[0], dims[0]) + _attn_block(dims[0])
    last = len(mult) - 1
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        if i > 0 and not residual:
            a //= 2  # the Wan2.1 VAE's upsamplers halve the width
        total += sum(_resblock(a if r == 0 else b, b) for r in range(res + 1))
        if i != last:
            mode = "upsample3d" if up[i] else "upsample2d"
            total += _resample(b, mode, b if residual else None)
    out = dims[-1]
    return total + out + _conv(out, cout, 27)


def clip_vision(cfg: Mapping[str, Any]) -> Weights:
    """CLIPVisionModel (Animate's character image encoder)."""
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    p, image = cfg.get("patch_size", 32), cfg.get("image_size", 224)
    embed = h + cfg.get("num_channels", 3) * h * p * p + ((image // p) ** 2 + 1) * h
    block = 4 * _linear(h, h) + 4 * h + _linear(h, inter) + _linear(inter, h)
    return Weights(embed + 2 * h + layers * block + 2 * h, 0, 0, layers, block)


def wav2vec2_ctc(cfg: Mapping[str, Any]) -> Weights:
    """Wav2Vec2ForCTC (S2V's audio encoder)."""
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    dims, kernels = list(cfg.get("conv_dim", [512] * 7)), list(cfg.get("conv_kernel",
                                                                      [10, 3, 3, 3, 3, 2, 2]))
    bias, norm = cfg.get("conv_bias", False), cfg.get("feat_extract_norm", "group")
    total, cin = 0, 1
    for i, (o, k) in enumerate(zip(dims, kernels, strict=True)):
        total += cin * o * k + (o if bias else 0)
        if norm == "layer" or i == 0:
            total += 2 * o       # LayerNorm per layer, or one GroupNorm on the first
        cin = o
    total += 2 * dims[-1] + _linear(dims[-1], h)             # feature projection
    if cfg.get("mask_time_prob", 0.05) > 0 or cfg.get("mask_feature_prob", 0.0) > 0:
        total += h                                          # masked_spec_embed
    k = cfg.get("num_conv_pos_embeddings", 128)
    groups = cfg.get("num_conv_pos_embedding_groups", 16)
    total += k + h * (h // groups) * k + h + 2 * h          # weight-normed pos conv, norm
    block = 4 * _linear(h, h) + 4 * h + _linear(h, inter) + _linear(inter, h)
    total += layers * block + _linear(h, cfg.get("vocab_size", 32))
    return Weights(total, 0, 0, layers, block)


KINDS: dict[str, Callable[[Mapping[str, Any]], Weights]] = {
    "WanTransformer3DModel": wan_transformer, "WanVACETransformer3DModel": wan_vace,
    "WanAnimateTransformer3DModel": wan_animate, "WanModel_S2V": s2v_transformer,
    "UMT5EncoderModel": umt5_encoder, "AutoencoderKLWan": wan_vae,
    "CLIPVisionModel": clip_vision, "Wav2Vec2ForCTC": wav2vec2_ctc,
}


def kind_of(config: Mapping[str, Any]) -> str:
    """A config's class: diffusers' `_class_name`, transformers' `architectures[0]`."""
    kind = config.get("_class_name") or (config.get("architectures") or [None])[0]
    if kind not in KINDS:
        raise ValueError(f"a config of class {kind!r}; allowed: {', '.join(KINDS)}")
    return kind


def weights(config: Mapping[str, Any]) -> Weights:
    """Parameter counts of the component `config` describes."""
    return KINDS[kind_of(config)](config)


# Which components a part loads, and at which dtype ("run": the worker's dtype; "vae":
# its VAE dtype; the encoders always run in float32: farm.model.loader).
PART_COMPONENTS = {"high": (("transformer", "run"),), "low": (("transformer_2", "run"),),
                   "dense": (("transformer", "run"),), "text": (("text_encoder", "run"),),
                   "vae": (("vae", "vae"), ("image_encoder", "float32"),
                           ("audio_encoder", "float32"))}


EXPERTS = ("high", "low", "dense")


def part_bytes(components: Mapping[str, Mapping[str, Any]], part: str, dtype: str = "bfloat16",
               vae_dtype: str = "float32", offload: str = "none") -> int:
    """Device bytes of one part ("high", "low", "dense", "text", "vae") of a model whose
    component configs are `components` (folder name -> config; OFFICIAL[f].components for
    an official model) while it runs: all of it, or under group offload its resident
    share. The simulator's expert bytes are part_bytes(OFFICIAL[family].components,
    "high"), its text encoder's part_bytes(..., "text")."""
    if part not in PART_COMPONENTS:
        raise ValueError(f"part {part!r}; allowed: {', '.join(PART_COMPONENTS)}")
    total = 0
    for name, role in PART_COMPONENTS[part]:
        if name in components:
            at = {"run": dtype, "vae": vae_dtype}.get(role, role)
            total += weights(components[name]).resident_bytes(at, offload)
    return total


def pool_bytes(components: Mapping[str, Mapping[str, Any]], holds: list[str] | tuple[str, ...],
               dtype: str = "bfloat16", vae_dtype: str = "float32", offload: str = "none") -> int:
    """Device bytes of the weights a replica holding `holds` keeps while it runs.
    Offload applies to the experts: "model" keeps one expert on the device at a time, as
    does "shard" for its one-GPU phases (a gang's ranks hold less: Weights.sharded_bytes),
    "group" each expert's non-block weights and two blocks; text and VAE stay."""
    experts = [p for p in holds if p in EXPERTS]
    rest = sum(part_bytes(components, p, dtype, vae_dtype) for p in holds if p not in EXPERTS)
    if not experts:
        return rest
    if offload in ("model", "shard"):
        return rest + max(part_bytes(components, e, dtype, vae_dtype) for e in experts)
    return rest + sum(part_bytes(components, e, dtype, vae_dtype, offload) for e in experts)


def official(family: str) -> Mapping[str, Mapping[str, Any]]:
    """The component configs of an official model, by family name."""
    if family not in OFFICIAL:
        raise ValueError(f"family {family!r}; allowed: {', '.join(OFFICIAL)}")
    return OFFICIAL[family].components


def offload_seconds(offload: str, expert_bytes: int, forwards: int) -> float:
    """Seconds offloading adds to one phase of `forwards` forwards of an expert of
    `expert_bytes`: model, one move in; group, the expert's blocks on every forward;
    shard, as model (a one-GPU phase moves the whole expert in; a gang's ranks load
    1/n of it each, once per open gang, and then nothing per phase)."""
    if offload not in OFFLOAD_MODES:
        raise ValueError(f"offload {offload!r}; allowed: {', '.join(OFFLOAD_MODES)}")
    if offload in ("model", "shard"):
        return expert_bytes / MODEL_OFFLOAD_BYTES_PER_S
    if offload == "group":
        return forwards * expert_bytes / GROUP_OFFLOAD_BYTES_PER_S
    return 0.0
