"""Still images in and out: first-frame conditioning inputs (Pillow)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def load_image(path: str, width: int, height: int) -> np.ndarray:
    """RGB uint8 (height, width, 3). Other sizes are resized with Lanczos, as diffusers'
    image processor does for its pipelines' `image=` inputs."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (width, height):
            im = im.resize((width, height), resample=Image.Resampling.LANCZOS)
        return np.asarray(im, dtype=np.uint8).copy()
