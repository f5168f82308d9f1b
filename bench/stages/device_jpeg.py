"""JPEG bytes decoded, resized and cropped on the model's device, for a GPU whose host cannot
decode as fast as the model computes (torchvision's ``decode_jpeg``: nvJPEG on a GPU,
libjpeg-turbo on a CPU).

The steps are the CPU path's (bench.stages.crops.preprocess): shorter side to 256 (bilinear,
antialiased), centre crop 224. The pixels are close to it but not the same: nvJPEG's IDCT and
torchvision's tensor resize differ from libjpeg's DCT-domain downscaling and Pillow's resize by
a few levels, so its cost is measured against the CPU path, as reduced precision's is against
fp32 (bench.stages.precision.cost_against_cpu_decoding, kept in the bundle of a `bench run
--decode-on-device`).
torchvision 0.29 deprecates its image decoders in favour of TorchCodec's; they are still
torchvision's on the lent GPU machines, so they are used here.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2.functional import center_crop, resize

from bench.stages.mlperf import CROP, RESIZE
from bench.stages.model import read_only_input


def decode_resize_crop(encoded: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, 3, 224, 224) uint8 crops on ``device`` from N JPEG byte strings, decoded as one
    batch; images of one size are resized together."""
    with read_only_input():  # decode_jpeg only reads the bytes
        data = [torch.from_numpy(np.frombuffer(item, np.uint8)) for item in encoded]
    if device.type == "cuda":
        # torchvision's CUDA decoder writes its outputs from a stream of its own without waiting
        # for the caller's, so memory that work queued here still reads could be overwritten
        # (pytorch/vision PR 9606): nothing may be queued on this stream when it decodes.
        torch.cuda.current_stream(device).synchronize()
    images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, image in enumerate(images):
        by_size[tuple(image.shape)].append(index)
    if len(by_size) == 1:
        return center_crop(resize(torch.stack(images), [RESIZE], antialias=True), [CROP])
    crops = torch.empty((len(images), 3, CROP, CROP), dtype=torch.uint8, device=device)
    for indices in by_size.values():
        same = torch.stack([images[i] for i in indices])
        crops[torch.tensor(indices, device=device)] = center_crop(resize(same, [RESIZE], antialias=True), [CROP])
    return crops
