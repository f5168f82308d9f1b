"""What every model stage shares: device, precision, verified weights, the forward pass and
turning logits into predictions. Plain Python: no Ray needed."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from bench.stages.handoff import node_name
from bench.stages.startup import COLUMN as STARTUP_COLUMN
from bench.stages.startup import Lane
from data_prep.common.cores import usable_cores

TOP_K = 5
# When this process had torch (imported above): a model actor's first start-up phase.
TORCH_IMPORTED = time.time()


@contextmanager
def read_only_input() -> Iterator[None]:
    """Batches from Ray's object store are read-only arrays. The stages only read them, so
    torch's warning on wrapping one ("The given NumPy array is not writable") is noise here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        yield


def predictions(batch: dict[str, np.ndarray], logits: torch.Tensor, save_logits: bool) -> dict[str, np.ndarray]:
    """id, label, top-1, top-5 classes and probabilities (and optionally all logits)."""
    logits = logits.float()
    probs, classes = torch.softmax(logits, dim=1).topk(TOP_K, dim=1)
    out = {
        "id": batch["id"],
        "label": batch["label"],
        "top1": classes[:, 0].cpu().numpy().astype(np.int32),
        "top5": classes.cpu().numpy().astype(np.int32),
        "top5_prob": probs.cpu().numpy().astype(np.float32),
        "preprocess_node": batch["preprocess_node"],
        "model_node": np.full(len(batch["id"]), node_name(), dtype=object),
    }
    if save_logits:
        out["logits"] = logits.cpu().numpy()
    return out


def ieee_fp32() -> None:
    """fp32 means IEEE fp32 on GPUs too. By default PyTorch lets cuDNN run fp32 convolutions as
    TF32 (a 10-bit mantissa) on Ampere and newer GPUs, so the reference pipeline and the fp32 model
    that reduced precision's cost is measured against would not be fp32 there; the reference
    benchmark's T4 has no TF32. torch's switch is process-wide, so every model stage sets it
    (the legacy flags: torch 2.11 and 2.14 take them without warnings, and mixing them with the
    newer ``fp32_precision`` API makes torch raise)."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


class ModelStage:
    """What both variants' Predictors share: device, precision, verified weights, and the
    forward pass. With ``expected_weights_sha256`` (what the driver loaded), an actor whose
    node holds different weights refuses to start instead of silently mixing models in one
    run. int8 needs ``int8_state``, the driver's calibrated model (bench.stages.quantize): its actors
    run that alone and load (and verify) the node's fp32 model only when asked to measure
    int8's cost, so a timed int8 run does not build a model it never uses. ``model``: the driver's
    model as it is, or an ObjectRef to it, for a variant that ships it (Variant.ships_model)."""

    # On the CPU, torch gets every core this process may use (resolve_device).
    all_cores = True

    def __init__(self, weights: str, weights_seed: int, device: str, precision: str, save_logits: bool,
                 memory_format: torch.memory_format = torch.contiguous_format,
                 expected_weights_sha256: str | None = None, int8_state: bytes | None = None, model=None):
        from bench.errors import BenchError

        from bench.stages import LOADED

        self.startup = Lane("model stage")
        self.startup.mark("stages loading", LOADED)
        self.startup.mark("torch imported", TORCH_IMPORTED)
        self.startup.mark("constructor started")
        ieee_fp32()
        self.device = resolve_device(device, self.all_cores)
        self.precision = precision
        self.save_logits = save_logits
        self._fp32_source = (weights, weights_seed, memory_format, expected_weights_sha256)
        self.model: torch.nn.Module | None = None
        self.int8_model: torch.nn.Module | None = None
        if precision == "int8":
            if int8_state is None:
                raise BenchError("int8 runs the driver's calibrated model (bench.stages.quantize.calibrate); none was given")
            from bench.stages.quantize import load

            self.int8_model = load(int8_state, self.startup)
        elif model is not None:  # the driver's own model, or a reference to it in Ray's object store
            if not isinstance(model, torch.nn.Module):
                import ray

                model = ray.get(model)
            self.startup.mark("model received")
            self.model = model.eval().to(self.device, memory_format=memory_format)
        else:
            self.model = self._load_fp32()
        self.startup.mark("on the device")

    def _load_fp32(self) -> torch.nn.Module:
        """This node's fp32 model on the device, refused if its weights are not the driver's."""
        from bench.errors import BenchError
        from bench.stages.weights import load_model

        weights, weights_seed, memory_format, expected_sha256 = self._fp32_source
        model, sha256 = load_model(weights, weights_seed, self.startup)
        if expected_sha256 and sha256 != expected_sha256:
            raise BenchError(f"{node_name()} loaded weights {sha256[:16]}..., not the driver's "
                             f"{expected_sha256[:16]}...: give every node the same weights file")
        return model.to(self.device, memory_format=memory_format)

    def inputs(self, images: np.ndarray) -> torch.Tensor:
        """The model's input tensor, on its device, from a preprocessed batch's images."""
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor, precision: str) -> torch.Tensor:
        """Logits for ready inputs at ``precision`` (call under ``torch.inference_mode``)."""
        if precision == "int8":
            return self.int8_model(inputs)
        if self.model is None:  # an int8 Predictor, asked for fp32 to measure int8's cost
            self.model = self._load_fp32()
        with autocast(self.device, precision):
            return self.model(inputs)

    def logits(self, images: np.ndarray, precision: str) -> torch.Tensor:
        with torch.inference_mode():
            return self.forward(self.inputs(images), precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.startup.mark("first batch in")
        logits = self.logits(batch["image"], self.precision)
        self.startup.mark("first forward done")
        out = predictions(batch, logits, self.save_logits)
        self.startup.mark("first batch out")
        out[STARTUP_COLUMN] = self.startup.column(len(batch["id"]), batch.get(STARTUP_COLUMN))
        return out


def threads_per_call(device: torch.device, calls_in_parallel: int) -> int | None:
    """torch threads for each of the calls a CPU model actor runs at once: an equal, fixed share
    of its cores (None on a GPU). A two-thread call waits at every operator's barrier, and a
    time slice that Ray takes from one thread stalls both; one-thread calls side by side ran
    faster (docs/performance.md). Fixed, not grown when a call runs alone, so that every batch
    is computed the same way whatever overlapped it: the logits reproduce bit for bit."""
    if device.type != "cpu":
        return None
    return max(1, usable_cores() // calls_in_parallel)


def resolve_device(device: str, all_cores: bool = True) -> torch.device:
    """The torch device for ``auto``/``cuda``/``cpu``. On the CPU with ``all_cores``, torch gets
    every core this process may use (under any container CPU limit: data_prep.common.cores): Ray
    sets OMP_NUM_THREADS to the actor's CPU reservation (1), which would leave a CPU-only node's
    model on one thread. Without it, torch keeps the thread count its process was given."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from bench.errors import BenchError

        raise BenchError("--device cuda was asked for, but torch sees no CUDA GPU here")
    if device == "cpu" and all_cores:
        torch.set_num_threads(usable_cores())
    return torch.device(device)


def autocast(device: torch.device, precision: str):
    """A context for float reduced precision, or a no-op for fp32."""
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device.type, dtype=dtype)
