"""JPEG decoding on the CPU with Pillow, without torch."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def decode_jpeg(data: bytes, min_side: int | None = None) -> Image.Image:
    """Decode to RGB. With ``min_side``, let libjpeg downscale in the DCT domain (1/2, 1/4,
    1/8) as far as it can while the shorter side stays >= ``min_side``."""
    image = Image.open(io.BytesIO(data))
    if min_side is not None:
        width, height = image.size
        scale = min_side / min(width, height)
        image.draft("RGB", (int(np.ceil(width * scale)), int(np.ceil(height * scale))))
    return image.convert("RGB")
