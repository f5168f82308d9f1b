"""The fast variant's model stage: ResNet-50 on uint8 pixels, normalised on its own device.

- The model's device converts to float and normalises (the same float32 arithmetic as
  torchvision's Normalize), with channels_last memory: NHWC uint8 pixels permuted to NCHW are
  already channels_last, so no copy is needed.
- On a GPU each calling thread has a CUDA stream of its own, so that when an actor runs two
  calls at once, one call's host-to-device copy overlaps the other's forward pass (on one
  stream, the copy waits for the compute before it, and the compute for the copy).
- JPEG bytes passed on by ``keep_encoded`` are decoded on the model's device
  (bench.stages.device_jpeg).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from bench.stages.device_jpeg import decode_resize_crop
from bench.stages.mlperf import MEAN_255, STD_255
from bench.stages.model import ModelStage, read_only_input, threads_per_call


class Predictor(ModelStage):
    """ResNet-50 in channels_last, normalising uint8 crops on its own device. On a CPU, the
    ``calls_in_parallel`` calls that run the model at once in this actor split its cores
    (threads_per_call)."""

    def __init__(self, weights: str, weights_seed: int, device: str, precision: str, save_logits: bool,
                 expected_weights_sha256: str | None = None, int8_state: bytes | None = None,
                 calls_in_parallel: int = 1):
        super().__init__(weights, weights_seed, device, precision, save_logits, memory_format=torch.channels_last,
                         expected_weights_sha256=expected_weights_sha256, int8_state=int8_state)
        shape = (1, 3, 1, 1)
        self.mean = torch.tensor(MEAN_255, dtype=torch.float32, device=self.device).view(shape)
        self.std = torch.tensor(STD_255, dtype=torch.float32, device=self.device).view(shape)
        self.threads_per_call = threads_per_call(self.device, calls_in_parallel)
        self._per_thread = threading.local()  # on a GPU: this thread's CUDA stream

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.device.type != "cuda":
            return super().__call__(batch)
        stream = getattr(self._per_thread, "stream", None)
        if stream is None:
            stream = self._per_thread.stream = torch.cuda.Stream(self.device)
        with torch.cuda.stream(stream):  # copy, forward and the read of results in order, on this stream
            return super().__call__(batch)

    def inputs(self, crops: np.ndarray) -> torch.Tensor:
        """Normalised channels_last input from NHWC uint8 crops, or from JPEG bytes (``keep_encoded``)."""
        if crops.dtype == object:
            pixels = decode_resize_crop(crops, self.device).contiguous(memory_format=torch.channels_last)
        else:
            with read_only_input():  # wrapped without a copy: nothing here writes to it
                pixels = torch.from_numpy(crops)
            pixels = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        return (pixels.float() - self.mean) / self.std

    def forward(self, inputs: torch.Tensor, precision: str) -> torch.Tensor:
        if self.threads_per_call:
            torch.set_num_threads(self.threads_per_call)  # the calling thread's OpenMP team
        return super().forward(inputs, precision)
