"""Measurements of single parts, in this process, for the harness: the model alone, preprocessing
per core, the host-to-device copy, and whether a batch's size changes an image's answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bench.config import RunConfig
from bench.measure.timing import images_per_second, model_ceiling
from bench.stages import quantize
from bench.variants import variant
from data_prep.common.images import encode_jpeg


def predictor_for(config: RunConfig, shard_files: list, filesystem=None):
    """The model stage a run of the resolved ``config`` gives its actors, built here (int8
    calibrated on the same images as in `bench run`)."""
    chosen = variant(config.pipeline)
    int8_state = None
    if config.precision == "int8":
        calibration = quantize.calibration_batch(shard_files, filesystem)
        int8_state = quantize.int8_state_for(chosen, config.weights, config.weights_seed, calibration)
    device = "cpu" if config.device == "cpu" else config.device
    return chosen.predictor()(**chosen.predictor_args(config, device, None, int8_state))


def model_batch(config: RunConfig, sample: dict[str, np.ndarray]) -> np.ndarray:
    """One model batch of the resolved ``config``'s size, made of ``sample``'s preprocessed images."""
    images = variant(config.pipeline).preprocess()(sample)["image"]
    repeats = -(-config.batch_size // len(images))
    return np.concatenate([images] * repeats)[: config.batch_size]


def ceiling(config: RunConfig, predictor, sample: dict[str, np.ndarray], min_seconds: float) -> Callable[[], float]:
    """Images/s of the model alone, as the run's actors compute (batch size, precision, memory
    format, device, as many calls at once as an actor runs); built once, taken as often as asked."""
    batch = model_batch(config, sample)
    return lambda: model_ceiling(predictor, batch, min_seconds, streams=config.calls_in_parallel)


def preprocess_per_core(sample: dict[str, np.ndarray], min_seconds: float) -> dict[str, Any]:
    """Images/s of each variant's preprocessing on one thread, on the raw sample and on the same
    images as stored JPEGs (what `data-prep --format jpeg` writes)."""
    jpeg = dict(sample, image=np.array([encode_jpeg(image) for image in sample["image"]], dtype=object))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        figures: dict[str, Any] = {}
        for fmt, batch in (("raw", sample), ("jpeg", jpeg)):
            rates = {name: images_per_second(lambda f=variant(name).preprocess(): f(batch), len(batch["id"]), min_seconds)
                     for name in ("reference", "fast")}
            figures[fmt] = {"reference_img_s": rates["reference"], "ours_img_s": rates["fast"],
                            "speedup": rates["fast"] / rates["reference"]}
        return figures
    finally:
        torch.set_num_threads(threads)


def host_to_device_gb_s(pixels: np.ndarray, device: torch.device, min_seconds: float) -> dict[str, float] | None:
    """GB/s of copying one batch's pixels to the GPU from page-locked memory (as the local
    launcher hands them over) and from ordinary memory (as Ray's object store does); None on a
    CPU or for JPEG bytes."""
    if device.type != "cuda" or pixels.dtype != np.uint8:
        return None
    pageable = torch.from_numpy(np.array(pixels))
    rates = {}
    for name, host in (("pinned", pageable.pin_memory()), ("pageable", pageable)):
        calls_per_s = images_per_second(lambda: host.to(device, non_blocking=True), 1, min_seconds, device=device)
        rates[name] = calls_per_s * host.nbytes / 1e9
    return rates


def batch_size_effect(predictor, images: np.ndarray) -> dict[str, Any]:
    """Does an image's answer depend on the batch it is computed in? The first 3/8 of one model
    batch (a short last batch, as Ray makes them) computed as a batch of their own, against the
    same images in the full batch; and the full batch computed twice. On a GPU, cuDNN picks
    kernels by batch size: if the smaller batch moves logits while a repeat does not, batches
    that change from run to run explain answers that do."""
    smaller = max(1, len(images) * 3 // 8)
    full = predictor.logits(images, predictor.precision).float().cpu()
    again = predictor.logits(images, predictor.precision).float().cpu()
    alone = predictor.logits(images[:smaller], predictor.precision).float().cpu()
    in_full = full[:smaller]
    return {
        "smaller_batch": smaller,
        "rows_bit_equal": int((alone == in_full).all(dim=1).sum()) / smaller,
        "top1_agreement": int((alone.argmax(dim=1) == in_full.argmax(dim=1)).sum()) / smaller,
        "max_abs_logit_diff": float((alone - in_full).abs().max()),
        "repeat_bit_equal": bool(torch.equal(full, again)),
    }
