"""Band-parallel decode: the Wan2.1 VAE decoder on vertical bands of the frame, exact.

The decoder mixes neighbouring pixels only through its 3x3 convolutions and, once, through
the per-frame spatial attention of its middle block (global over the frame); its norms are
per pixel. So the pixel columns of a band of latent columns [c0, c1) come out exactly as in
the one-pass decode when

  1. everything up to and including that attention runs on the whole frame (at latent
     resolution: ~1 % of the decoder's FLOPs at 720p), and
  2. the rest runs on the band widened by `halo_columns` latent columns on each side (the
     receptive field of the remaining convolutions: 15 for the Wan2.1 VAE), whose pixels
     are then dropped. Zero padding at the widened band's edges corrupts only the halo.

Time is untouched: every band keeps its own causal cache and decodes one latent frame per
call, as farm.model.decode does, so a band streams like the one-pass decode. A band decoder
given `gather` (the gang's all-gather along the width) yields whole frames on every rank.

    band k of n: latent columns = tensor_split(range(w), n)[k]
    x (1, C, 1, h, w) ─conv_in, mid resnet 0, attention─> (1, C', 1, h, w)
      ─crop [c0 - halo, c1 + halo)─> mid resnet 1, up blocks, head ─> (1, 3, f, 8h, 8 w_k')
      ─drop the halo─> (1, 3, f, 8h, 8 (c1 - c0)) ─gather─> (1, 3, f, 8h, 8w)

The temporal analogue (decode a later chunk of latent frames after a warm-up) is not
worth it: the causal receptive field of the same convolutions is ~38 latent frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from farm.model.decode import StreamingDecoder
from farm.plan.segments import band_columns

CACHE_T = 2  # frames of each causal conv's input kept between calls (diffusers' CACHE_T)


def halo_columns(decoder) -> int:
    """Latent columns on each side that the decoder's convolutions after its middle
    attention can reach: 3x3 convs at latent resolution count 1, at 2x 1/2, and so on."""
    mid = decoder.mid_block
    if len(mid.attentions) != 1:
        raise ValueError("band decode expects one attention in the decoder's middle block")
    reach, scale = 2.0 * len(mid.resnets[1:]), 1
    for up in decoder.up_blocks:
        if type(up).__name__ != "WanUpBlock":  # the Wan2.2 VAE's residual up blocks
            raise ValueError("band decode supports the Wan2.1 VAE decoder, "
                             f"not {type(up).__name__}")
        reach += 2.0 * len(up.resnets) / scale  # two 3x3 convs per residual block
        if up.upsamplers is not None:
            scale *= 2
            reach += 1.0 / scale  # the upsampler's 3x3 conv, after the 2x upsample
    return math.ceil(reach + 1.0 / scale)  # conv_out


class BandDecoder(StreamingDecoder):
    """Streams the pixel columns of one band: (1, 3, f, H, W_band) per latent frame."""

    def __init__(self, vae, band: int, bands: int, halo: int):
        super().__init__(vae)
        if vae.config.patch_size is not None:
            raise ValueError("band decode supports the Wan2.1 VAE (no patchified output)")
        if not 0 <= band < bands:
            raise ValueError(f"band {band} outside {bands} bands")
        self.band, self.bands, self.halo = band, bands, halo
        self._keep: tuple[int, int] = (0, 0)  # pixel columns of the band in its crop

    def _decode_one(self, x: torch.Tensor) -> torch.Tensor:
        dec, cache, idx = self.vae.decoder, self.cache, [0]
        w = x.shape[-1]
        c0, c1 = band_columns(w, self.bands, self.band)
        lo, hi = max(0, c0 - self.halo), min(w, c1 + self.halo)
        # 1. the whole frame up to the middle block's attention
        h = _cached(dec.conv_in, x, cache, idx)
        h = dec.mid_block.resnets[0](h, feat_cache=cache, feat_idx=idx)
        h = dec.mid_block.attentions[0](h)
        # 2. the widened band through the rest (shapes stay those of this band's crop)
        h = h[..., lo:hi]
        for resnet in dec.mid_block.resnets[1:]:
            h = resnet(h, feat_cache=cache, feat_idx=idx)
        for up in dec.up_blocks:
            h = up(h, feat_cache=cache, feat_idx=idx, first_chunk=self.first)
        h = _cached(dec.conv_out, dec.nonlinearity(dec.norm_out(h)), cache, idx)
        scale = h.shape[-1] // (hi - lo)
        self._keep = ((c0 - lo) * scale, (c1 - lo) * scale)
        return h

    def _finish(self, chunk: torch.Tensor) -> torch.Tensor:
        """Drop the halo: (1, 3, f, H, W_crop) -> (1, 3, f, H, W_band)."""
        return chunk[..., self._keep[0]:self._keep[1]].contiguous()


def band_frames(vae, latents: torch.Tensor, bands: int, rank: int = 0, ranks: int = 1,
                gather: Callable[[torch.Tensor, list[int]], torch.Tensor] | None = None
                ) -> Iterator[torch.Tensor]:
    """Whole decoded chunks (1, 3, f, H, W) per latent frame, like StreamingDecoder's,
    from `bands` bands of which this rank (of `ranks`) decodes rank, rank + ranks, ...;
    `gather(mine, widths of every rank)` all-gathers the ranks' columns along the width
    (a gang's SeqGroup.gather; held as a callable so that a failing rank's traceback
    does not keep its process group alive, which would leave its peers waiting)."""
    halo = halo_columns(vae.decoder)
    mine = list(range(rank, bands, ranks))
    w = latents.shape[-1]
    if bands > w:
        raise ValueError(f"{bands} bands for {w} latent columns")
    if ranks > 1 and gather is None:
        raise ValueError("a band decode over several ranks needs their all-gather")
    order = [b for peer in range(ranks) for b in range(peer, bands, ranks)]  # gathered order
    decoders = [BandDecoder(vae, b, bands, halo) for b in mine]
    cols = {b: band_columns(w, bands, b)[1] - band_columns(w, bands, b)[0] for b in range(bands)}
    for chunks in zip(*(decoder.decode(latents) for decoder in decoders), strict=True):
        local = torch.cat(chunks, dim=-1)
        if ranks == 1:
            yield local
            continue
        scale = local.shape[-1] // sum(cols[b] for b in mine)
        widths = {b: scale * c for b, c in cols.items()}
        sizes = [sum(widths[b] for b in range(peer, bands, ranks)) for peer in range(ranks)]
        full = gather(local, sizes)
        parts = dict(zip(order, torch.split(full, [widths[b] for b in order], dim=-1), strict=True))
        yield torch.cat([parts[b] for b in range(bands)], dim=-1)


def _cached(conv, x: torch.Tensor, cache: list, idx: list[int]) -> torch.Tensor:
    """A causal conv of the decoder's head or tail with its cache, as WanDecoder3d does."""
    i = idx[0]
    keep = x[:, :, -CACHE_T:].clone()
    if keep.shape[2] < CACHE_T and cache[i] is not None:
        keep = torch.cat([cache[i][:, :, -1:].to(keep.device), keep], dim=2)
    out = conv(x, cache[i])
    cache[i] = keep
    idx[0] += 1
    return out
