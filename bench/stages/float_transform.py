"""The reference's preprocessing, as it ran it: float32 tensors made on the CPU by torchvision's
Resize(256), CenterCrop(224) and Normalize, shipped to the model as they are. Deliberately
unoptimised: it is the baseline."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import CenterCrop, Compose, Normalize, Resize

from bench.stages.handoff import block_read, preprocessed
from bench.stages.jpeg import decode_jpeg
from bench.stages.mlperf import CROP, MEAN_255, RESIZE, STD_255
from bench.stages.model import read_only_input

_TRANSFORM = Compose([Resize(RESIZE), CenterCrop(CROP), Normalize(mean=MEAN_255, std=STD_255)])


def preprocess(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    block_read()
    images = batch["image"]
    if images.dtype == np.uint8:  # raw (N, 256, 256, 3); torch.Tensor copies, so read-only input is fine
        with read_only_input():
            tensor = _TRANSFORM(torch.Tensor(images.transpose(0, 3, 1, 2)))
    else:  # JPEG bytes
        tensor = torch.stack(
            [_TRANSFORM(torch.Tensor(np.asarray(decode_jpeg(data)).transpose(2, 0, 1))) for data in images]
        )
    return preprocessed(batch, tensor.numpy())
