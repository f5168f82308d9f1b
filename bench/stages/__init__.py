"""Pipeline variants, selected by name like the backends of the MLCommons reference.

Each variant is a module with ``preprocess(batch) -> batch``, a ``Predictor`` class and
``predictor_options(config)`` (its Predictor's own arguments); a new variant is a new module
registered here, not a branch in every function. Variants are imported when asked for, as the
MLCommons reference imports its backends: this package is what a Ray worker imports to run a
preprocessing function defined here, and the fast variant's preprocessing needs no torch
(bench.stages.batches).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial
from types import ModuleType

import numpy as np

from bench.config import PIPELINES
from data_prep.common.shard_format import pixels_to_numpy


def variant(name: str) -> ModuleType:
    """The variant's module, imported now (it imports torch)."""
    if name not in PIPELINES:
        raise KeyError(f"no pipeline variant {name!r}: the variants are {', '.join(PIPELINES)}")
    return importlib.import_module(f"bench.stages.{name}")


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
