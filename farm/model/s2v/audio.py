"""Audio: wav2vec2 features at the video frame rate, the causal audio encoder and the
injectors that add audio to selected DiT layers (official `audio_encoder.py`,
`audio_utils.py`, `auxi_blocks.py`).

    16 kHz mono ──wav2vec2 (every hidden state)──> (layers, T50, C) at 50 Hz
               ──linear, align_corners──> (layers, T30, C) at 30 Hz
               ──bucket: video frame i takes feature round(i * 30 / fps) (0 past the end)
               ──> (1, layers, C, frames)       what a clip slices: 4 per latent frame

    per clip: 73 copies of its first frame in front (the motion history's place)
          ──softmax-free layer weights (SiLU, normalised)──> (1, 73 + F, C)
          ──causal convs, stride 1, 2, 2──> (1, 19 + L, 4 + 1, dim) local tokens
                                            (1, 19 + L, 1, dim)     global (AdaIN)
          ──drop the first 19──> one group of 5 audio tokens per latent frame
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from farm.model.s2v.layers import Attention, layer_norm

WAV2VEC_RATE = 50  # features per second (16 kHz / 320)
FEATURE_RATE = 30  # the official resampling target (AudioEncoder.video_rate)
SAMPLE_RATE = 16000


@torch.no_grad()
def wav2vec_features(extractor, model, samples: np.ndarray) -> torch.Tensor:
    """16 kHz mono float samples -> every hidden state, resampled to 30 Hz: (layers, T30, C)."""
    inputs = extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_values
    hidden = model(inputs.to(model.device, model.dtype), output_hidden_states=True).hidden_states
    feats = torch.cat(hidden).float()  # (layers, T50, C)
    # linear interpolation to 30 Hz, ends aligned
    length = int(feats.shape[1] / WAV2VEC_RATE * FEATURE_RATE)
    out = F.interpolate(feats.transpose(1, 2), size=length, mode="linear", align_corners=True)
    return out.transpose(1, 2)


def frame_buckets(feats: torch.Tensor, fps: int, start: int, count: int) -> torch.Tensor:
    """(layers, T30, C) -> (1, layers, C, count) for video frames [start, start + count):
    frame i takes the 30 Hz feature nearest to i / fps (numpy's rounding, half to even,
    as the official sampler), zeros past the end of the audio."""
    index = np.round(np.arange(start, start + count) / fps * FEATURE_RATE).astype(int)
    layers, n, c = feats.shape
    out = torch.zeros(count, layers, c, dtype=feats.dtype, device=feats.device)
    inside = index < n
    out[torch.from_numpy(inside)] = feats[:, torch.from_numpy(index[inside])].transpose(0, 1)
    return out.permute(1, 2, 0).unsqueeze(0)


class CausalConv(nn.Conv1d):
    """Conv1d over time, padded on the left by repeating the first value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.kernel_size[0] - 1, 0), mode="replicate"))


class AudioEncoder(nn.Module):
    """Per-frame audio tokens: a learned mix of wav2vec2 layers, then causal convolutions
    that reduce time 4x (one step per latent frame)."""

    def __init__(self, audio_dim: int, layers: int, dim: int, tokens: int):
        super().__init__()
        self.tokens = tokens
        self.layer_weights = nn.Parameter(torch.full((1, layers, 1, 1), 0.01))
        self.local_in = CausalConv(audio_dim, dim // 4 * tokens, 3)
        self.global_in = CausalConv(audio_dim, dim // 4, 3)
        self.down1 = CausalConv(dim // 4, dim // 2, 3, stride=2)
        self.down2 = CausalConv(dim // 2, dim, 3, stride=2)
        self.global_out = nn.Linear(dim, dim)
        self.pad_token = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def _reduce(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C/4, T) -> (N, T', dim): norm, SiLU, stride-2 conv, twice."""
        x = F.silu(layer_norm(x.transpose(1, 2), 1e-6)).transpose(1, 2)
        x = F.silu(layer_norm(self.down1(x.to(self.down1.weight.dtype)).transpose(1, 2), 1e-6))
        x = self.down2(x.transpose(1, 2).to(self.down2.weight.dtype))
        return F.silu(layer_norm(x.transpose(1, 2), 1e-6))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """audio (B, layers, C, T) -> global (B, T', 1, dim), local (B, T', tokens + 1, dim)."""
        b = audio.shape[0]
        # 1. weighted mix of the wav2vec2 layers                               (B, C, T)
        w = F.silu(self.layer_weights.float())
        x = ((audio.float() * w) / w.sum(dim=1, keepdim=True)).sum(dim=1)
        dtype = self.local_in.weight.dtype
        # 2. local: `tokens` groups of channels, each reduced in time           (B, T', n, dim)
        loc = self.local_in(x.to(dtype))
        loc = loc.view(b, self.tokens, -1, loc.shape[-1]).flatten(0, 1)       # (B n, C/4, T)
        loc = self._reduce(loc.float())
        loc = loc.view(b, self.tokens, *loc.shape[1:]).transpose(1, 2)
        loc = torch.cat([loc, self.pad_token.float().expand(b, loc.shape[1], 1, -1)], dim=2)
        # 3. global: one token per frame, for the injectors' AdaIN              (B, T', 1, dim)
        glo = self._reduce(self.global_in(x.to(dtype)).float())
        glo = self.global_out(glo.to(self.global_out.weight.dtype)).float()
        return glo.unsqueeze(2), loc


class AudioInjector(nn.Module):
    """After one DiT block: each latent frame's tokens attend to that frame's audio tokens,
    normalised by AdaIN from the frame's global audio token."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.adain = nn.Linear(dim, 2 * dim)
        self.attn = Attention(dim, heads)

    def forward(self, x: torch.Tensor, glo: torch.Tensor, loc: torch.Tensor) -> torch.Tensor:
        """x (1, F * hw, dim) float32 (the noisy tokens), glo (1, F, 1, dim), loc (1, F, n, dim)
        -> the residual to add, (1, F * hw, dim) float32."""
        frames = loc.shape[1]
        h = x.view(frames, -1, x.shape[-1])                                   # (F, hw, dim)
        # 1. AdaIN: shift and scale from the frame's global audio token
        mod = self.adain(F.silu(glo[0, :, 0]).to(self.adain.weight.dtype)).float()  # (F, 2 dim)
        shift, scale = mod.chunk(2, dim=1)
        h = layer_norm(h, 1e-5) * (1 + scale[:, None]) + shift[:, None]
        # 2. cross-attention to the frame's audio tokens                       (F, hw, dim)
        out = self.attn(h, loc[0])
        return out.float().reshape(1, -1, x.shape[-1])
