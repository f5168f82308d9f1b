"""Reduced precision: which one a device gets by default, and what it (and decoding JPEG on
the model's device) costs in accuracy.

A shortcut is only worth its speed when its cost is measured: every run that takes one
records, on a sample of its own images, top-1 agreement and relative logit error against the
exact path (fp32; decoding on the CPU) computed by the same model on the same device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

SAMPLE_IMAGES = 64
CHUNK = 16


def default_for(kind: str) -> str:
    """fp16 on GPUs, whose tensor cores all have it (a T4 has no fast bf16); bf16 on CPUs with
    native bf16 (AVX512-BF16/AMX); int8 on other CPUs, where bf16 is emulated and slower than
    fp32 (bench.stages.quantize). The driver's CPU decides for CPU actors: pass --precision
    when the cluster's CPUs differ."""
    if kind == "cuda":
        return "fp16"
    return "bf16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "int8"


def sample_batch(shard_files: list, filesystem=None, images: int = SAMPLE_IMAGES) -> dict[str, np.ndarray]:
    """The images the cost is measured on: the first ``images`` rows of the first shard, raw as
    the pipeline's readers give them (int8 calibrates on the last ones: bench.stages.quantize)."""
    from data_prep.common.shard_format import read_rows

    return read_rows(shard_files[0], slice(0, images), filesystem)


def accuracy_costs(predictor, preprocess, sample: dict[str, np.ndarray], decode_on_device: bool) -> dict[str, Any]:
    """``precision_cost`` and ``decoding_cost`` of a run on ``sample`` (rows as the readers give
    them, through the variant's ``preprocess``), each None where the run did not take that
    shortcut."""
    return {
        "precision_cost": measure_cost(predictor, preprocess(sample)) if predictor.precision != "fp32" else None,
        "decoding_cost": cost_against_cpu_decoding(predictor, preprocess, sample) if decode_on_device else None,
    }


def measure_cost(predictor, preprocessed_batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """Top-1 agreement and relative logit error (L2 per image) of ``predictor.precision``
    against fp32, on one preprocessed batch, with the predictor's own model and device."""
    images = preprocessed_batch["image"]
    chunks = [images[i : i + CHUNK] for i in range(0, len(images), CHUNK)]  # activations stay small
    reduced = torch.cat([predictor.logits(c, predictor.precision).float() for c in chunks])
    exact = torch.cat([predictor.logits(c, "fp32").float() for c in chunks])
    return {"precision": predictor.precision, "against": "fp32", "device": str(predictor.device),
            **logit_agreement(reduced, exact)}


def cost_against_cpu_decoding(predictor, preprocess, sample: dict[str, np.ndarray]) -> dict[str, Any]:
    """What decoding on the model's device costs in accuracy: the logits of ``sample``'s JPEG
    bytes decoded by ``predictor`` on its device against those of the same images decoded on
    the CPU by the variant's ``preprocess``, at the predictor's precision."""
    on_device = predictor.logits(sample["image"], predictor.precision)
    on_cpu = predictor.logits(preprocess(sample)["image"], predictor.precision)
    return {"against": "decoding on the CPU", "device": str(predictor.device), **logit_agreement(on_device, on_cpu)}


def logit_agreement(logits: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """Images compared, top-1 agreement and relative logit error (L2 per image) of ``logits``
    against ``reference`` for the same images."""
    logits, reference = logits.float(), reference.float()
    relative = (torch.linalg.vector_norm(logits - reference, dim=1) / torch.linalg.vector_norm(reference, dim=1)).cpu()
    return {
        "images": int(len(reference)),
        "top1_agreement": float((logits.argmax(1) == reference.argmax(1)).float().mean()),
        "rel_logit_error_mean": float(relative.mean()),
        "rel_logit_error_max": float(relative.max()),
    }
