"""Pipeline variants, selected by name like the backends of the MLCommons reference.

Each variant is a module with ``preprocess(batch) -> batch``, a ``Predictor`` class and
``predictor_options(config)`` (its Predictor's own arguments); a new variant is a new module
registered here, not a branch in every function.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import ModuleType

import numpy as np

from bench.stages import fast, seed
from data_prep.shards import pixels_to_numpy

VARIANTS: dict[str, ModuleType] = {"fast": fast, "seed": seed}


def variant(name: str) -> ModuleType:
    return VARIANTS[name]


def preprocess_for(stages: ModuleType, fmt: str, decode_on_model_device: bool = False
                   ) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """The variant's preprocessing for a dataset of format ``fmt``, as Ray Data's numpy batches
    hold it: raw shards come as (N,256,256,3) uint8 (Ray's tensor type) and JPEG ones as bytes,
    which ``preprocess`` takes as they are; pixel shards come as bytes too, so they are turned
    into the raw array first (told by the manifest's format, never guessed from the bytes).
    With ``decode_on_model_device``, JPEG bytes are passed on for the model's device to decode
    (only the fast variant can)."""
    if decode_on_model_device:
        if fmt != "jpeg" or not hasattr(stages, "keep_encoded"):
            raise ValueError(f"decoding on the model's device needs JPEG data and the fast pipeline, "
                             f"not {fmt} data and the {stages.__name__.rsplit('.', 1)[-1]} pipeline")
        return stages.keep_encoded
    if fmt == "pixels":
        return partial(_from_pixel_bytes, stages.preprocess)
    return stages.preprocess


def _from_pixel_bytes(preprocess, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return preprocess(dict(batch, image=pixels_to_numpy(batch["image"])))
