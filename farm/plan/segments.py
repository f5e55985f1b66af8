"""Cutting a scene's latent frames into segments.

Windows (parallel; every step, neighbours swap predictions on the shared frames):

    latent frame   0         5         10        15        20        25   29
                   |---------|---------|---------|---------|---------|----|
    window 0       [=====================)                                      0..10
    window 1                    [=====================)                          6..16   (overlap 4)
    window 2                                  [======================)          12..22  (overlap 4)
    ...            the fewest windows of at most W frames, all of one size (the
                   smallest that keeps overlaps >= O), starts spread evenly.

    blend weights in an overlap of O frames (linear ramp, both sides > 0, sum 1):
        left window   O/(O+1) ... 1/(O+1)
        right window  1/(O+1) ... O/(O+1)

Chain (sequential; segment k+1 starts from the last decoded frame(s) of segment k):

    latent frame   0                    10                   20
    segment 0      [====================]                              latents 0..10
    segment 1                           [====================]         latents 10..20
                   the shared latent position is the shared pixel frame; it is
                   dropped from segment 1's output, so the scene keeps its length.
                   Carrying 5 frames (Animate, VACE), segments share 2 latents
                   (pixel frames 4s .. 4s+4) and segment k+1 drops 5 frames.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    """Latent frames [start, stop) of a scene covered by one segment."""

    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def plan_windows(num_latent: int, window: int, overlap: int) -> tuple[Window, ...]:
    """Equal-size windows covering [0, num_latent), neighbours sharing >= overlap frames.

    Uses the fewest windows of at most `window` frames, then shrinks them to the smallest
    equal size that still keeps every overlap >= `overlap`: less compute than full-size
    windows with wide overlaps, and shorter windows cost less attention.
    """
    _check(num_latent, window)
    if not 1 <= overlap < window:
        raise ValueError(f"overlap must be in [1, window), got overlap={overlap}, window={window}")
    if num_latent <= window:
        return (Window(0, num_latent),)
    n = -(-(num_latent - overlap) // (window - overlap))  # ceil: fewest windows
    size = -(-(num_latent + (n - 1) * overlap) // n)  # ceil: smallest equal size
    span = num_latent - size
    starts = [k * span // (n - 1) for k in range(n)]
    return tuple(Window(s, s + size) for s in starts)


def plan_chain(num_latent: int, window: int, shared: int = 1) -> tuple[Window, ...]:
    """Sequential segments of at most `window` latents, consecutive ones sharing `shared`
    (1: one carried frame; 2: five carried frames, Animate's and VACE's other choice)."""
    _check(num_latent, window)
    if window <= shared and num_latent > 1:
        raise ValueError(f"a chain sharing {shared} latent frame(s) "
                         f"needs longer windows than {window}")
    if num_latent <= window:
        return (Window(0, num_latent),)
    new = num_latent - shared  # latent frames after the first clip's shared ones
    n = -(-new // (window - shared))
    sizes = [new // n + (1 if k < new % n else 0) for k in range(n)]
    out, start = [], 0
    for size in sizes:
        out.append(Window(start, start + size + shared))
        start += size
    return tuple(out)


def shared_latents(carry: int) -> int:
    """Latent frames two chain segments share when the second carries `carry` pixel
    frames of the first: frame 0 alone, then 4 per latent (1 -> 1, 5 -> 2)."""
    return (carry - 1) // 4 + 1


def blend_weights(window: Window) -> tuple[float, ...]:
    """Pyramid weight of a window's prediction on each of its frames.

    w(f) = min(f - start + 1, stop - f): a window trusts its centre most. Predictions are
    blended as sum(w_k * p_k) / sum(w_k) over the windows covering a frame, so a frame
    covered by one window keeps that window's prediction, and in a two-window overlap of
    O frames the weights are the linear ramp of the diagram above.
    """
    return tuple(float(min(f - window.start + 1, window.stop - f))
                 for f in range(window.start, window.stop))


def neighbours(windows: tuple[Window, ...], index: int) -> tuple[int, ...]:
    """Indices of the other windows that share at least one frame with window `index`."""
    w = windows[index]
    return tuple(k for k, o in enumerate(windows)
                 if k != index and o.start < w.stop and w.start < o.stop)


def owner_slices(windows: tuple[Window, ...]) -> tuple[Window, ...]:
    """Disjoint ranges, one per window, that together cover the scene once.

    After the last step every window holds identical values on shared frames, so the
    decoder may take each latent frame from any window covering it; it takes frames
    [start_k, start_{k+1}) from window k.
    """
    out = []
    for k, w in enumerate(windows):
        stop = windows[k + 1].start if k + 1 < len(windows) else w.stop
        out.append(Window(w.start, stop))
    return tuple(out)


def _check(num_latent: int, window: int) -> None:
    if num_latent < 1 or window < 1:
        raise ValueError(f"need num_latent >= 1 and window >= 1, got {num_latent}, {window}")


# Band-parallel decode (farm.model.bands): a frame decodes as vertical bands of latent
# columns, each on its own worker. The band count is part of the plan (a function of the
# model and the width only), so every placement decodes the same bands and yields the same
# bits. A band should be at least as wide as the halo each side recomputes (15 latent
# columns for the Wan2.1 VAE decoder), or the halo costs more than the split saves.
BAND_COLUMNS = 16
MAX_DECODE_BANDS = 10
# Latent columns each side a band recomputes (farm.model.bands.halo_columns of the Wan2.1
# VAE decoder: 14.25, rounded up); for the simulator's cost of a band.
DECODE_HALO = 15


def decode_bands(vae_spatial: int, width: int) -> int:
    """Bands of a decode: 1 for the Wan2.2 VAE (x16, patchified: not supported), else one
    per BAND_COLUMNS latent columns, at most MAX_DECODE_BANDS (720p: 10, 480p: 6)."""
    if vae_spatial != 8:
        return 1
    return max(1, min(MAX_DECODE_BANDS, width // vae_spatial // BAND_COLUMNS))


def band_columns(width: int, bands: int, band: int) -> tuple[int, int]:
    """Latent columns [c0, c1) of `band` of `bands` over `width` (tensor_split's chunks)."""
    sizes = [width // bands + (1 if i < width % bands else 0) for i in range(bands)]
    start = sum(sizes[:band])
    return start, start + sizes[band]
