"""Decoding, converting and resizing single images with Pillow.

Real ImageNet holds CMYK and grayscale JPEGs, a PNG named ``.JPEG``, EXIF-rotated photos and
truncated files. Everything Pillow can fully decode is turned into upright RGB; anything else
raises ``RejectedImage`` with a reason that ends up in the manifest.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

RAW_SIDE = 256
JPEG_QUALITY = 90
REENCODE_QUALITY = 95
_EXIF_ORIENTATION = 0x0112


class RejectedImage(Exception):
    """The bytes are not an image Pillow can decode completely."""


def encode_jpeg(rgb: np.ndarray | Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    image = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb, "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode_rgb(data: bytes) -> tuple[Image.Image, list[str]]:
    """Fully decode ``data`` to upright RGB; returns the image and what had to be converted."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            source_format, source_mode = image.format, image.mode
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            image.load()  # raises on truncated or corrupt data
    except UnidentifiedImageError:
        raise RejectedImage("not an image format Pillow recognises") from None
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError...)
        raise RejectedImage(f"cannot decode: {exc}") from exc

    changes = []
    if source_format != "JPEG":
        changes.append(f"{source_format} data, not JPEG")
    if orientation not in (1, None):
        image = ImageOps.exif_transpose(image)
        changes.append(f"EXIF orientation {orientation} applied")
    if image.mode != "RGB":
        if source_mode not in ("L",):  # grayscale is routine; record the rest (CMYK, P, RGBA)
            changes.append(f"{source_mode} converted to RGB")
        image = image.convert("RGB")
    return image, changes


def resize_center_crop(image: Image.Image, side: int = RAW_SIDE, crop: int | None = None) -> np.ndarray:
    """Shorter side to ``side`` (bilinear, antialiased), then a centred ``crop`` x ``crop``
    square (default: ``side``), as uint8 HWC.

    The arithmetic follows torchvision's Resize(int) and CenterCrop on PIL images, so the
    pixels are what ``Resize(side)`` + ``CenterCrop(crop)`` would give.
    """
    crop = side if crop is None else crop
    width, height = image.size
    if width <= height:
        new_w, new_h = side, int(side * height / width)
    else:
        new_w, new_h = int(side * width / height), side
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.BILINEAR)
    top = int(round((new_h - crop) / 2.0))
    left = int(round((new_w - crop) / 2.0))
    return np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.uint8)


def as_stored_jpeg(data: bytes) -> tuple[bytes, int, int, list[str]]:
    """Bytes to store for ``--format jpeg``: the original when it is a plain upright RGB or
    grayscale JPEG, else a re-encoded upright RGB JPEG. Returns (bytes, height, width, changes)."""
    image, changes = decode_rgb(data)
    width, height = image.size
    if not changes:
        return data, height, width, changes
    return encode_jpeg(image, REENCODE_QUALITY), height, width, changes
