"""One-call check of the GPU path, for a lent GPU machine that has torch, torchvision, pyarrow
and nvidia-ml-py but no Ray. It drives the pipeline's own stages (the variant's ``preprocess``
and ``Predictor``, exactly what the Ray actors call) in one process, with the NVML sampler on,
and prints the model-only ceiling, the end-to-end figure, GPU utilisation and energy per image.

    PYTHONPATH=. python3 -m bench.gpu_check --images 4096 --batch-size 256 --precision fp16

Stages run back to back here (no prefetching loader), so end-to-end is a lower bound of what
the Ray pipeline, which overlaps them, can reach.
"""

from __future__ import annotations

import argparse
import json
import socket
import time

import numpy as np
import torch

from bench.stages import variant
from bench.telemetry.collector import SamplingLoop
from bench.telemetry.summary import summarise
from data_prep.synth import image_id, synth_image


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batches(images: int, batch_size: int) -> list[dict[str, np.ndarray]]:
    pixels = np.stack([synth_image(0, i) for i in range(images)])
    return [
        {"id": np.array([image_id(i) for i in range(start, min(start + batch_size, images))], dtype=object),
         "label": np.full(min(batch_size, images - start), -1, dtype=np.int32),
         "image": pixels[start : start + batch_size]}
        for start in range(0, images, batch_size)
    ]


def model_ceiling(predictor, crops: dict[str, np.ndarray], iterations: int) -> float:
    """Images/s of the model alone on ready tensors already on the device."""
    from bench.stages.common import autocast

    ready = predictor.normalise(crops["image"]) if hasattr(predictor, "normalise") else torch.as_tensor(
        crops["image"], device=predictor.device)
    with torch.inference_mode(), autocast(predictor.device, predictor.precision):
        predictor.model(ready)  # warm-up (cuDNN autotuning, lazy init)
        _sync(predictor.device)
        start = time.perf_counter()
        for _ in range(iterations):
            predictor.model(ready)
        _sync(predictor.device)
    return iterations * len(crops["image"]) / (time.perf_counter() - start)


def run(images: int, batch_size: int, pipeline: str, device: str, precision: str, iterations: int) -> dict:
    stages = variant(pipeline)
    data = batches(images, batch_size)
    predictor = stages.Predictor("random", 0, device, precision, False)
    ceiling = model_ceiling(predictor, stages.preprocess(data[0]), iterations)

    loop = SamplingLoop(socket.gethostname(), 0.1, gpus=predictor.device.type == "cuda")
    loop.start()
    start = time.perf_counter()
    done = 0
    for batch in data:
        out = predictor(stages.preprocess(batch))
        done += len(out["top1"])
    _sync(predictor.device)
    seconds = time.perf_counter() - start
    telemetry = summarise(loop.stop(), done)
    gpu_util = [g["util_pct"]["mean"] for g in telemetry["gpus"] if g["util_pct"]]
    return {
        "device": str(predictor.device),
        "gpu": torch.cuda.get_device_name(predictor.device) if predictor.device.type == "cuda" else None,
        "pipeline": pipeline, "precision": precision, "batch_size": batch_size, "images": done,
        "model_only_img_s": ceiling,
        "end_to_end_img_s": done / seconds,
        "end_to_end_over_ceiling": done / seconds / ceiling,
        "gpu_util_mean_pct": float(np.mean(gpu_util)) if gpu_util else None,
        "energy_j_per_image": telemetry["energy_j_per_image"],
        "telemetry": telemetry,
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--pipeline", default="fast", choices=["fast", "seed"])
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--iterations", type=int, default=20, help="Model-only timing iterations.")
    args = parser.parse_args()
    result = run(args.images, args.batch_size, args.pipeline, args.device, args.precision, args.iterations)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
