"""The reference benchmark's pipeline, faithfully: float32 tensors made on the CPU, fp32 model
on NCHW input, batch 1000, one actor per GPU running two calls at once. The baseline that
everything is compared with, so deliberately unoptimised."""

from __future__ import annotations

from bench.variants.base import Variant


class Reference(Variant):
    name = "reference"
    aliases = ("seed",)
    summary = "the reference benchmark's code path, faithfully (float32 tensors shipped to an fp32 model)"
    # Its script's settings on every device: batch 1000, fp32, max_concurrency=2 (threaded).
    defaults = {"batch_size": 1000, "precision": "fp32", "calls_per_actor": 2, "threaded_actors": True,
                "warm_up": False}
    reference_start = True
    ships_model = True  # as its script did: model_ref = ray.put(model), ray.get in each actor

    def preprocess(self):
        from bench.stages.float_transform import preprocess

        return preprocess

    def predictor(self):
        from bench.stages.reference_predictor import Predictor

        return Predictor
