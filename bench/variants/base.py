"""What a pipeline variant is: a class that declares its defaults and what it can do, and names
the plain stages (bench.stages) it is made of, like a backend of the MLCommons inference
reference. A new variant is a new module here, registered in bench.variants; nothing else
branches on a variant's name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import numpy as np

from data_prep.common.shard_format import pixels_to_numpy

Batch = dict[str, np.ndarray]


class Variant(ABC):
    """A pipeline variant. Importing its module must not import torch: the variant is looked up
    where its preprocessing runs, in Ray workers that may never load the model."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str]
    # RunConfig fields this variant sets whatever the device, then per device kind ("cpu",
    # "cuda") for what is still open; the user's settings win over both (bench.config.resolve).
    defaults: ClassVar[dict[str, Any]] = {}
    device_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    # Whether its model stage can decode JPEG bytes on its own device (--decode-on-device).
    decodes_on_device: ClassVar[bool] = False
    # Whether it keeps the reference benchmark's start exactly (no warm-up before the timer).
    reference_start: ClassVar[bool] = False
    # Whether the driver ships its model to the actors through Ray's object store (ray.put before
    # the timer, ray.get in each actor), rather than each actor building it from the weights.
    ships_model: ClassVar[bool] = False

    @abstractmethod
    def preprocess(self) -> Callable[[Batch], Batch]:
        """The preprocessing function, as Ray Data's numpy batches of a raw or JPEG shard hold them."""

    @abstractmethod
    def predictor(self) -> type:
        """The model stage's class (bench.stages.model.ModelStage); importing it imports torch."""

    def warm_modules(self) -> list[str]:
        """What a warm-up loads in the worker processes before the timer: what the read and
        preprocessing tasks run. Not the model's torch: Ray starts each actor in a fresh process
        (docs/performance.md), and the tasks would carry torch's memory for nothing."""
        return ["ray.data", self.preprocess().__module__]

    def keep_encoded(self) -> Callable[[Batch], Batch]:
        """The preprocessing that passes JPEG bytes on for the model's device to decode."""
        raise NotImplementedError(f"the {self.name} variant does not decode on the model's device")

    def data_defaults(self, fmt: str, decode_on_device: bool) -> dict[str, Any]:
        """RunConfig fields this variant sets for data of format ``fmt`` (after the device's)."""
        return {}

    def predictor_options(self, config) -> dict[str, Any]:
        """The Predictor's own arguments beyond ModelStage's, from a resolved RunConfig."""
        return {}

    def predictor_args(self, config, device: str, weights_sha256: str | None,
                       int8_state: bytes | None = None) -> dict[str, Any]:
        """Everything the Predictor of a run with the resolved ``config`` is built with."""
        return {"weights": config.weights, "weights_seed": config.weights_seed, "device": device,
                "precision": config.precision, "save_logits": config.save_logits,
                "expected_weights_sha256": weights_sha256, "int8_state": int8_state,
                **self.predictor_options(config)}

    def preprocess_for(self, fmt: str, decode_on_device: bool = False) -> Callable[[Batch], Batch]:
        """The preprocessing for a dataset of format ``fmt``: raw shards come as (N,256,256,3)
        uint8 and JPEG ones as bytes, which ``preprocess`` takes as they are; pixel shards come as
        bytes too, turned into the raw array first (told by the manifest's format, never guessed).
        With ``decode_on_device`` (a resolved config has checked it applies), JPEG bytes pass on."""
        if decode_on_device:
            return self.keep_encoded()
        if fmt == "pixels":
            return partial(_from_pixel_bytes, self.preprocess())
        return self.preprocess()


def _from_pixel_bytes(preprocess: Callable[[Batch], Batch], batch: Batch) -> Batch:
    return preprocess(dict(batch, image=pixels_to_numpy(batch["image"])))
