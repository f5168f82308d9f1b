"""The reference ("seed") pipeline, stage by stage, as the published Ray benchmark ran it.

Preprocessing makes float32 tensors on the CPU with torchvision Resize(256), CenterCrop(224)
and Normalize; the model runs fp32 on NCHW tensors. This is the baseline everything is
compared with, so it stays deliberately unoptimised.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import CenterCrop, Compose, Normalize, Resize

from bench.stages.batches import CROP, MEAN_255, RESIZE, STD_255, decode_jpeg, preprocessed
from bench.stages.common import ModelStage, read_only_input

_TRANSFORM = Compose([Resize(RESIZE), CenterCrop(CROP), Normalize(mean=MEAN_255, std=STD_255)])


def preprocess(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    images = batch["image"]
    if images.dtype == np.uint8:  # raw (N, 256, 256, 3); torch.Tensor copies, so read-only input is fine
        with read_only_input():
            tensor = _TRANSFORM(torch.Tensor(images.transpose(0, 3, 1, 2)))
    else:  # JPEG bytes
        tensor = torch.stack(
            [_TRANSFORM(torch.Tensor(np.asarray(decode_jpeg(data)).transpose(2, 0, 1))) for data in images]
        )
    return preprocessed(batch, tensor.numpy())


def predictor_options(config) -> dict[str, int]:
    """None beyond ModelStage's: the reference's threads, every call on all cores."""
    return {}


class Predictor(ModelStage):
    """ResNet-50 on one device, NCHW fp32 input; a Ray Data actor or a plain callable."""

    def inputs(self, images: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(images, device=self.device)
