"""The S2V DiT (Wan2.2-S2V-14B): Wan2.1 blocks over the clip's noisy latents, the reference
image and the motion history, with audio injected after selected blocks.

One forward, for a clip of L latent frames (h x w latents, 2x2 patches):

    1. audio        (1, layers, C, 4L) ──73 copies of frame 0 in front, AudioEncoder──>
                    global (1, L, 1, dim), local (1, L, 5, dim)   (the 19 history steps dropped)
    2. noisy        patchify(latents) + patchify_pose(pose latents, or 0)
                                                          (1, L*hw/4, dim)   RoPE frames 0..L-1
    3. reference    patchify(ref latent)                  (1, hw/4, dim)     RoPE frame 30
    4. motion       FramePack(motion latents)             (1, N_m, dim)      RoPE frames < 0
                    (none for a scene's first clip: the official `drop_first_motion`)
    5. tokens       [2 | 3 | 4] + segment embedding (0 noisy, 1 reference, 2 motion)
    6. time         t for the noisy tokens, 0 for the others      e (1, 6, 2, dim)
    7. blocks       Block(x, e, context); after block i in audio_layers:
                    noisy tokens += AudioInjector(frame by frame)
    8. head         noisy tokens only, adaLN from t, linear, unpatchify   (1, 16, L, h, w)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from farm.model.s2v.audio import AudioEncoder, AudioInjector
from farm.model.s2v.layers import Block, grid_rope, layer_norm, rope_table, sinusoid, spread
from farm.model.s2v.motion import FramePack

REF_FRAME = 30  # RoPE frame position of the reference image


@dataclass(frozen=True)
class S2VConfig:
    """Sizes of the S2V DiT; defaults are Wan2.2-S2V-14B (official wan/configs/wan_s2v_14B.py)."""

    dim: int = 5120
    ffn_dim: int = 13824
    heads: int = 40
    layers: int = 40
    in_dim: int = 16
    out_dim: int = 16
    text_dim: int = 4096
    text_len: int = 512
    freq_dim: int = 256
    eps: float = 1e-6
    # wav2vec2-large-xlsr-53: 1024 channels, 25 hidden states (embeddings + 24 layers)
    audio_dim: int = 1024
    audio_layers: int = 25
    audio_tokens: int = 4
    audio_inject: tuple[int, ...] = (0, 4, 8, 12, 16, 20, 24, 27, 30, 33, 36, 39)
    pose_dim: int = 16
    motion_frames: int = 73

    @property
    def motion_latents(self) -> int:
        return (self.motion_frames + 3) // 4


class S2VTransformer(nn.Module):
    def __init__(self, config: S2VConfig):
        super().__init__()
        c = self.config = config
        self.patch_in = nn.Conv3d(c.in_dim, c.dim, kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.pose_in = nn.Conv3d(c.pose_dim, c.dim, kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.text_in = nn.Sequential(nn.Linear(c.text_dim, c.dim), nn.GELU(approximate="tanh"),
                                     nn.Linear(c.dim, c.dim))
        self.time_in = nn.Sequential(nn.Linear(c.freq_dim, c.dim), nn.SiLU(),
                                     nn.Linear(c.dim, c.dim))
        self.time_mod = nn.Sequential(nn.SiLU(), nn.Linear(c.dim, 6 * c.dim))
        self.segment_embed = nn.Embedding(3, c.dim)
        self.blocks = nn.ModuleList(Block(c.dim, c.ffn_dim, c.heads, c.eps)
                                    for _ in range(c.layers))
        self.audio = AudioEncoder(c.audio_dim, c.audio_layers, c.dim, c.audio_tokens)
        self.audio_inject = nn.ModuleList(AudioInjector(c.dim, c.heads) for _ in c.audio_inject)
        self.motion = FramePack(c.in_dim, c.dim)
        self.head_mod = nn.Parameter(torch.randn(1, 2, c.dim) / math.sqrt(c.dim))
        self.head = nn.Linear(c.dim, 4 * c.out_dim)
        self.table = rope_table(c.dim // c.heads)  # complex128, not a parameter

    @property
    def device(self) -> torch.device:
        return self.patch_in.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.patch_in.weight.dtype

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor,
                encoder_hidden_states: torch.Tensor, ref_latents: torch.Tensor,
                motion_latents: torch.Tensor, audio: torch.Tensor,
                pose_latents: torch.Tensor | None = None, return_dict: bool = False):
        """hidden_states (1, 16, L, h, w); timestep (1,); encoder_hidden_states (1, S, text_dim);
        ref_latents (1, 16, 1, h, w); motion_latents (1, 16, M, h, w), M = 0 for a scene's
        first clip; audio (1, layers, C, 4L); pose_latents (1, 16, L, h, w) or None (the
        official zeros). Returns ((1, 16, L, h, w) float32,)."""
        c, dtype = self.config, self.dtype
        _, _, frames, h, w = hidden_states.shape
        table = self.table.to(hidden_states.device)
        # 1. audio tokens, one group per latent frame
        glo, loc = self._audio(audio)
        # 2.-4. noisy, reference and motion tokens with their RoPE positions
        x = self.patch_in(hidden_states.to(dtype))
        if pose_latents is None:
            pose_latents = torch.zeros(1, c.pose_dim, frames, h, w, device=x.device)
        x = x + self.pose_in(pose_latents.to(dtype))
        x = x.flatten(2).transpose(1, 2)                                      # (1, L hw/4, dim)
        rows, cols = spread(0, h // 2, h // 2), spread(0, w // 2, w // 2)
        parts = [x, self.patch_in(ref_latents.to(dtype)).flatten(2).transpose(1, 2)]
        freqs = [grid_rope(table, list(range(frames)), rows, cols),
                 grid_rope(table, [REF_FRAME], rows, cols)]
        if motion_latents.shape[2]:
            tokens, motion_freqs = self.motion(motion_latents, table)
            parts.append(tokens)
            freqs.append(motion_freqs)
        # 5. one sequence, segment embeddings added
        n = [part.shape[1] for part in parts]
        seg = torch.cat([torch.full((k,), i, device=x.device) for i, k in enumerate(n)])
        seq = torch.cat(parts, dim=1).float() + self.segment_embed(seg).float()[None]
        freqs = torch.cat(freqs, dim=0)
        # 6. time: t on the noisy tokens, 0 on reference and motion          (1, 6, 2, dim)
        t = torch.cat([timestep.reshape(-1)[:1].float(), timestep.new_zeros(1).float()])
        t_emb = self.time_in(sinusoid(c.freq_dim, t).to(dtype)).float()       # (2, dim)
        e = self.time_mod(t_emb.to(dtype)).float().view(2, 6, c.dim).permute(1, 0, 2)[None]
        # 7. blocks, audio after the selected ones
        context = self._text(encoder_hidden_states)
        inject = {layer: j for j, layer in enumerate(c.audio_inject)}
        for i, block in enumerate(self.blocks):
            seq = block(seq, e, n[0], freqs, context)
            if i in inject:
                res = self.audio_inject[inject[i]](seq[:, :n[0]], glo, loc)
                seq = torch.cat([seq[:, :n[0]] + res, seq[:, n[0]:]], dim=1)
        # 8. head on the noisy tokens
        out = self._head(seq[:, :n[0]], t_emb[:1])
        return (self._unpatchify(out, frames, h, w),)

    def _audio(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        history = audio[..., :1].expand(*audio.shape[:-1], c.motion_frames)
        glo, loc = self.audio(torch.cat([history, audio], dim=-1))
        return glo[:, c.motion_latents:], loc[:, c.motion_latents:]

    def _text(self, embeds: torch.Tensor) -> torch.Tensor:
        """Zero-padded to text_len tokens, projected: (1, text_len, dim)."""
        pad = self.config.text_len - embeds.shape[1]
        if pad > 0:
            embeds = torch.cat([embeds, embeds.new_zeros(embeds.shape[0], pad, embeds.shape[2])],
                               dim=1)
        return self.text_in(embeds.to(self.dtype))

    def _head(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.head_mod.float() + t_emb.unsqueeze(1)).chunk(2, dim=1)
        x = layer_norm(x, self.config.eps) * (1 + scale) + shift
        return self.head(x.to(self.dtype)).float()

    def _unpatchify(self, x: torch.Tensor, frames: int, h: int, w: int) -> torch.Tensor:
        """(1, L * h/2 * w/2, 4 C) -> (1, C, L, h, w)."""
        c = self.config.out_dim
        x = x.view(frames, h // 2, w // 2, 1, 2, 2, c)
        return torch.einsum("fhwpqrc->cfphqwr", x).reshape(1, c, frames, h, w)
