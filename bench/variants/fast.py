"""Ours: the reference's function, shaped for throughput. uint8 crops cross the object store
(4x fewer bytes than float32), the model's device converts and normalises them, channels_last,
reduced precision, and settings per device (the numbers behind each: docs/performance.md)."""

from __future__ import annotations

from bench.variants.base import Variant

# Preprocessing that decodes JPEGs on the CPU needs more cores than there are read tasks, so it
# gets tasks of its own; crops of decoded pixels take whole read blocks and fuse into the reads.
JPEG_DECODE_BATCH_SIZE = 256


class Fast(Variant):
    name = "fast"
    summary = "ours: uint8 crops, normalised on the model's device, channels_last, reduced precision"
    # Worker processes started before the timer, as Ray's own benchmarks do.
    defaults = {"warm_up": True}
    device_defaults = {
        # Small batches stay in cache; two calls at once split the cores between them, fed by
        # 16 MiB read blocks so that both have work.
        "cpu": {"batch_size": 16, "calls_per_actor": 2, "threaded_actors": True, "precision": "auto",
                "read_block_mib": 16},
        # Big batches; two calls at once, each on a CUDA stream of its own, so that one's copies
        # overlap the other's forward pass.
        "cuda": {"batch_size": 256, "calls_per_actor": 2, "threaded_actors": True, "precision": "auto",
                 "read_block_mib": 128},
    }
    decodes_on_device = True

    def preprocess(self):
        from bench.stages.crops import preprocess

        return preprocess

    def keep_encoded(self):
        from bench.stages.crops import keep_encoded

        return keep_encoded

    def predictor(self):
        from bench.stages.pixel_predictor import Predictor

        return Predictor

    def data_defaults(self, fmt: str, decode_on_device: bool) -> dict:
        return {"preprocess_batch_size": JPEG_DECODE_BATCH_SIZE} if fmt == "jpeg" and not decode_on_device else {}

    def predictor_options(self, config) -> dict:
        return {"calls_in_parallel": config.calls_in_parallel}
