"""uint8 centre crops, made without torch (the fast variant's preprocessing).

On the reference's 256x256 data, Resize(256) is the identity and CenterCrop(224) a slice, so
the CPU does almost nothing and 4x fewer bytes than float32 cross the object store; the model's
device converts and normalises (bench.stages.pixel_predictor). JPEG data is decoded with
libjpeg's DCT-domain downscaling, resized in uint8 and cropped, or, asked for
(``keep_encoded``), passed on as bytes for the model's device to decode
(bench.stages.device_jpeg). It imports neither torch nor a Predictor, so that the Ray workers
running it do not import torch (bench.stages says why).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from bench.stages.handoff import block_read, preprocessed
from bench.stages.jpeg import decode_jpeg
from bench.stages.mlperf import CROP, RESIZE
from data_prep.common.images import resize_center_crop

_OFFSET = (RESIZE - CROP) // 2


def preprocess(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    block_read()
    images = batch["image"]
    if images.dtype == np.uint8 and images.shape[1:3] == (RESIZE, RESIZE):
        crops = np.ascontiguousarray(images[:, _OFFSET : _OFFSET + CROP, _OFFSET : _OFFSET + CROP, :])
    elif images.dtype == np.uint8:
        crops = np.stack([resize_center_crop(Image.fromarray(image), RESIZE, CROP) for image in images])
    else:
        crops = np.stack([resize_center_crop(decode_jpeg(data, min_side=RESIZE), RESIZE, CROP) for data in images])
    return preprocessed(batch, crops)


def keep_encoded(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """JPEG bytes passed on as they are, for the Predictor to decode on its device."""
    block_read()
    return preprocessed(batch, batch["image"])
