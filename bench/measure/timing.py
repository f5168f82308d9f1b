"""Shared timing helpers for `bench perf` and the Ray-free GPU check: how fast a callable runs
on a batch, and how fast the model alone runs on tensors already on its device. Plain Python;
no Ray."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(fn: Callable[[], Any], images_per_call: int, min_seconds: float = 2.0,
                      min_calls: int = 3, device: torch.device | None = None, streams: int = 1) -> float:
    """Warms up (at least one call and a quarter of ``min_seconds``: oneDNN and cuDNN pick
    and cache kernels over the first calls), then calls ``fn`` for at least ``min_seconds``
    and ``min_calls`` calls; returns images/s over the timed calls. With ``streams`` > 1, that
    many threads call ``fn`` at once, as a model actor's concurrent calls do."""
    if streams == 1:
        return _timed_calls(fn, min_seconds, min_calls, device) * images_per_call
    warmed = threading.Barrier(streams)  # all warm before any stream's clock starts
    rates = [0.0] * streams

    def stream(i: int) -> None:
        rates[i] = _timed_calls(fn, min_seconds, min_calls, device, before_timing=warmed.wait)

    threads = [threading.Thread(target=stream, args=(i,), name=f"stream-{i}") for i in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(rates) * images_per_call


def _timed_calls(fn: Callable[[], Any], min_seconds: float, min_calls: int, device: torch.device | None,
                 before_timing: Callable[[], Any] = lambda: None) -> float:
    """Calls/s of ``fn`` after a warm-up (see images_per_second)."""
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < min_seconds / 4:
        fn()
    if device is not None:
        sync(device)
    before_timing()
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        fn()
        calls += 1
    if device is not None:
        sync(device)
    return calls / (time.perf_counter() - start)


def model_ceiling(predictor, crops, min_seconds: float = 5.0, min_calls: int = 3, streams: int = 1) -> float:
    """Images/s of the model alone: forward passes on ready tensors (already normalised, in the
    predictor's memory format, on its device), at its precision and the crops' batch size,
    ``streams`` calls at a time (the pipeline's calls in flight per model actor)."""
    with torch.inference_mode():
        ready = predictor.inputs(crops)

    def forward() -> None:
        with torch.inference_mode():
            predictor.forward(ready, predictor.precision)

    return images_per_second(forward, len(crops), min_seconds, min_calls, predictor.device, streams)
