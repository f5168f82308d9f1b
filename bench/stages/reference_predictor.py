"""The reference's model stage: ResNet-50 on ready NCHW float32 tensors, as it ran it."""

from __future__ import annotations

import numpy as np
import torch

from bench.stages.model import ModelStage


class Predictor(ModelStage):
    """ResNet-50 on one device, NCHW float input; a Ray Data actor or a plain callable."""

    # The reference left torch on Ray's OMP_NUM_THREADS: the actor's CPU reservation.
    all_cores = False

    def inputs(self, images: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(images, device=self.device)
