"""The fast pipeline's preprocessing runs in Ray workers that never import torch
(bench.stages says why). Ray pickles a module-level function by reference, so a worker
imports the function's module and all it imports: here a fresh interpreter that refuses torch
unpickles each preprocessing function as Ray sends it, runs it on a batch, and must give what
this process gives."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from ray import cloudpickle

from bench.variants import variant
from data_prep.common.images import encode_jpeg

WORKER_WITHOUT_TORCH = """
import pickle, sys

class RefuseTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"preprocessing imported {name}")
        return None

sys.meta_path.insert(0, RefuseTorch())
function, batch = pickle.load(sys.stdin.buffer)
pickle.dump(function(batch), sys.stdout.buffer)
"""


def batch_of(images: np.ndarray) -> dict[str, np.ndarray]:
    return {"id": np.array([f"i{i}" for i in range(len(images))], object), "label": np.arange(len(images)),
            "image": images}


def as_stored(fmt: str, pixels: np.ndarray) -> np.ndarray:
    """The image column as Ray Data's numpy batches hold a shard of format ``fmt``."""
    if fmt == "raw":
        return pixels
    encode = (lambda image: image.tobytes()) if fmt == "pixels" else encode_jpeg
    return np.array([encode(image) for image in pixels], object)


@pytest.mark.parametrize("fmt, on_device", [("raw", False), ("pixels", False), ("jpeg", False), ("jpeg", True)])
def test_fast_preprocessing_runs_in_a_worker_that_cannot_import_torch(fmt, on_device):
    pixels = np.random.default_rng(0).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    batch = batch_of(as_stored(fmt, pixels))
    function = variant("fast").preprocess_for(fmt, on_device)
    proc = subprocess.run([sys.executable, "-c", WORKER_WITHOUT_TORCH], input=cloudpickle.dumps((function, batch)),
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    in_worker, here = pickle.loads(proc.stdout), function(batch)
    for column in ("id", "label", "image"):
        assert np.array_equal(in_worker[column], here[column]), column
    if not on_device:
        assert in_worker["image"].shape == (3, 224, 224, 3)
