"""Frame arithmetic of the Wan VAE: pixel frames <-> latent frames, valid sizes.

The Wan VAE compresses time by 4 and treats the first frame on its own:

    pixel frames   0 | 1 2 3 4 | 5 6 7 8 | ...      n = 4k + 1 pixel frames
    latent frames  0 |    1    |    2    | ...      L = k + 1 latent frames

so a shot of n = 4k+1 frames has (n-1)/4 + 1 latents, and L latents decode to 1 + 4(L-1)
frames. Nothing here rounds: callers reject invalid values and show `nearest_*`.
"""

from __future__ import annotations


def is_valid_frame_count(n: int, temporal: int = 4) -> bool:
    return n >= 1 and (n - 1) % temporal == 0


def latent_frames(n: int, temporal: int = 4) -> int:
    """Latent frames of a shot of n pixel frames; n must be temporal*k + 1."""
    if not is_valid_frame_count(n, temporal):
        raise ValueError(f"frame count {n} is not {temporal}k+1")
    return (n - 1) // temporal + 1


def pixel_frames(num_latent: int, temporal: int = 4) -> int:
    """Pixel frames decoded from num_latent latent frames."""
    if num_latent < 1:
        raise ValueError(f"latent frame count must be >= 1, got {num_latent}")
    return 1 + temporal * (num_latent - 1)


def nearest_frame_counts(n: int, temporal: int = 4) -> tuple[int, ...]:
    """The valid counts just below and above n (one value when n is below the first)."""
    lower = (n - 1) // temporal * temporal + 1
    upper = lower + temporal
    return (upper,) if lower < 1 else (lower, upper)


def nearest_multiples(value: int, multiple: int) -> tuple[int, ...]:
    lower = value // multiple * multiple
    upper = lower + multiple
    return (upper,) if lower < multiple else (lower, upper)


def or_list(values: tuple[object, ...]) -> str:
    return " or ".join(str(v) for v in values)
