"""Frame-pack motion tokens: the clip's motion history, coarser the further back it is
(official `FramePackMotioner`, drop mode "padd", every part used).

    motion latents (1, 16, M, h, w), M = 19 for 73 pixel frames; fewer are zero-padded
    in front, more are cut to the latest 19:

        latent   -19 ............ -4 | -3  -2 | -1
                 16 frames, 4x8x8     2, 2x4x4  1, 1x2x2     (kernel = stride)
        tokens   4 x h/8 x w/8        1 x h/4 x w/4  h/2 x w/2

    RoPE frame positions: the latest at -1, the 2x group at -3, the 4x groups at
    -19, -14, -9, -4; height / width positions spread over the full-resolution grid.
"""

from __future__ import annotations

import torch
from torch import nn

from farm.model.s2v.layers import grid_rope, spread

BUCKETS = (1, 2, 16)  # latest first: full resolution, 2x pooled, 4x pooled


class FramePack(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.post = nn.Conv3d(in_dim, dim, kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.x2 = nn.Conv3d(in_dim, dim, kernel_size=(2, 4, 4), stride=(2, 4, 4))
        self.x4 = nn.Conv3d(in_dim, dim, kernel_size=(4, 8, 8), stride=(4, 8, 8))

    def forward(self, motion: torch.Tensor,
                table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """motion (1, C, M, h, w) -> tokens (1, N, dim), RoPE multipliers (N, d / 2)."""
        _, c, m, h, w = motion.shape
        total = sum(BUCKETS)
        # 1. the latest 19 latents, zeros in front when fewer          (1, C, 19, h, w)
        packed = motion.new_zeros(1, c, total, h, w)
        keep = min(total, m)
        if keep:
            packed[:, :, -keep:] = motion[:, :, -keep:]
        far, near, last = packed.split(list(BUCKETS[::-1]), dim=2)  # 16, 2, 1
        # 2. patchify each group at its own scale
        dtype = self.post.weight.dtype
        tokens = [conv(x.to(dtype)).flatten(2).transpose(1, 2)
                  for conv, x in ((self.post, last), (self.x2, near), (self.x4, far))]
        # 3. positions: before frame 0, farther for the coarser groups
        hh, ww = h // 2, w // 2  # the main grid's size
        freqs = [
            grid_rope(table, [-1], spread(0, hh, h // 2), spread(0, ww, w // 2)),
            grid_rope(table, [-3], spread(0, hh, h // 4), spread(0, ww, w // 4)),
            grid_rope(table, [-p for p in spread(4, 16, 4)[::-1]],
                      spread(0, hh, h // 8), spread(0, ww, w // 8)),
        ]
        return torch.cat(tokens, dim=1), torch.cat(freqs, dim=0)
