"""What every stage's batches share, without torch: the MLPerf transform's constants, JPEG
decoding, the batch a preprocessing stage hands on, and where a stage ran.

Kept free of torch so that preprocessing which needs none (bench.stages.crops) runs in Ray
workers that never import it: torch and torchvision cost each of them ~3 s of a core and ~350
MiB of private memory (docs/performance.md, "Each optimisation"). That counts where
preprocessing has workers of its own: on GPU nodes, and on a mixed cluster's CPU-only nodes (on
a CPU-only cluster Ray Data fuses it into the model actor, which imports torch anyway).
"""

from __future__ import annotations

import io
import socket
import sys

import numpy as np
from PIL import Image

RESIZE = 256
CROP = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# Pixels arrive as 0..255, so the ImageNet mean/std are scaled by 255. (The reference script
# fed 0..255 floats to Normalize(MEAN, STD) without dividing by 255: the same cost, but
# meaningless predictions with real weights. Both variants here compute the correct function.)
MEAN_255 = tuple(m * 255 for m in MEAN)
STD_255 = tuple(s * 255 for s in STD)


def node_name() -> str:
    """The Ray node id when running inside Ray, else the host name. Ray is looked up, not
    imported: a process Ray runs has loaded it already, and where Ray is not installed (the GPU
    check's machine) an import would be tried again on every batch, and from two calling threads
    at once one of them could see the other's half-failed module."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()
    return socket.gethostname()


def decode_jpeg(data: bytes, min_side: int | None = None) -> Image.Image:
    """Decode to RGB. With ``min_side``, let libjpeg downscale in the DCT domain (1/2, 1/4,
    1/8) as far as it can while the shorter side stays >= ``min_side``."""
    image = Image.open(io.BytesIO(data))
    if min_side is not None:
        width, height = image.size
        scale = min_side / min(width, height)
        image.draft("RGB", (int(np.ceil(width * scale)), int(np.ceil(height * scale))))
    return image.convert("RGB")


def preprocessed(batch: dict[str, np.ndarray], images: np.ndarray) -> dict[str, np.ndarray]:
    """A preprocessing stage's output: the batch's ids and labels, the new pixels, and where."""
    return {
        "id": batch["id"],
        "label": batch["label"],
        "image": images,
        "preprocess_node": np.full(len(images), node_name(), dtype=object),
    }
