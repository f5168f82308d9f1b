"""int8 ResNet-50 for CPUs without native bf16: post-training static quantization, done once.

On an AVX2-only CPU, bf16 is emulated (slower than fp32) and int8 is the reduced precision
that pays (docs/performance.md). The driver calibrates once,
on a fixed set of the dataset's own images, and ships the quantized weights and scales to
every model actor, so all of them run one identical int8 model (each calibrating for itself
could give nodes with different CPUs different scales) and the calibration stays out of the
timed run. Its accuracy cost is measured like any reduced precision's
(bench.stages.precision.measure_cost), on images the calibration did not see where the dataset has
enough.

torchvision's quantizable ResNet-50 (the architecture of its published int8 weights) with
torch's eager-mode quantization and the "x86" engine (fbgemm, or oneDNN where it is faster),
whose default qconfig reduces the activation range on CPUs without VNNI to avoid overflow.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torchvision.models.quantization import resnet50 as quantizable_resnet50

from bench.stages.startup import forget_preprocessing_lane

ENGINE = "x86"
CALIBRATION_IMAGES = 64

# torch marks eager-mode quantization as deprecated in favour of torchao's pt2e flow, which
# needs torch.compile (~30 s per actor here); the pinned torch still ships it and it is what
# torchvision's own quantized models use. Silence only these notices (the last comes from
# torch's own default qconfig).
_DEPRECATION_NOTICES = (r"torch\.ao\.quantization is deprecated", r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
                        r"Please use quant_min and quant_max", r"TypedStorage is deprecated")


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        for message in _DEPRECATION_NOTICES:
            warnings.filterwarnings("ignore", message=message)
        yield


def _skeleton(fp32_state: dict[str, torch.Tensor] | None) -> torch.nn.Module:
    """The quantizable architecture with batch norm folded into the convolutions, observers in place."""
    torch.backends.quantized.engine = ENGINE
    model = quantizable_resnet50(weights=None, quantize=False).eval()
    if fp32_state is not None:
        model.load_state_dict(fp32_state)
    model.fuse_model(is_qat=False)
    model.qconfig = torch.ao.quantization.get_default_qconfig(ENGINE)
    return torch.ao.quantization.prepare(model)


def calibrate(model: torch.nn.Module, batches: Iterable[torch.Tensor]) -> bytes:
    """The int8 model's state (weights, scales, zero points) as bytes, from an fp32 ResNet-50
    and normalised input batches: the activations' ranges are observed on these batches."""
    with _quiet():
        prepared = _skeleton(model.state_dict())
        with torch.inference_mode():
            for batch in batches:
                prepared(batch.cpu())
        quantized = torch.ao.quantization.convert(prepared)
        buffer = io.BytesIO()
        torch.save(quantized.state_dict(), buffer)
    return buffer.getvalue()


def load(state: bytes, lane=None) -> torch.nn.Module:
    """The int8 model from ``calibrate``'s bytes, ready for CPU inference on fp32 input.
    ``lane`` (bench.stages.startup.Lane), if given, gets the phases marked."""
    with _quiet(), warnings.catch_warnings():
        # The empty skeleton's observers saw no data; its scales are replaced just below.
        warnings.filterwarnings("ignore", message="must run observer before calling calculate_qparams")
        model = torch.ao.quantization.convert(_skeleton(None))
        if lane is not None:
            lane.mark("model built")
        model.load_state_dict(torch.load(io.BytesIO(state), weights_only=True))
        if lane is not None:
            lane.mark("weights loaded and verified")
    return model


def state_sha256(state: bytes) -> str:
    return hashlib.sha256(state).hexdigest()


def calibration_batch(shard_files: list, filesystem=None, images: int = CALIBRATION_IMAGES) -> dict:
    """The images int8 calibrates on: the last ``images`` rows of the last shard, apart from the
    first shard's first rows on which its cost is measured (bench.stages.precision.sample_batch)."""
    from data_prep.common.shard_format import read_rows

    return read_rows(shard_files[-1], slice(-images, None), filesystem)


def int8_state_for(variant, weights: str, weights_seed: int, calibration: dict) -> bytes:
    """Calibrate a variant's fp32 model on a raw batch (``calibration``, as the readers give it):
    the batch goes through the variant's own preprocessing and input stage, 16 at a time."""
    predictor = variant.predictor()(weights, weights_seed, "cpu", "fp32", False)
    images = variant.preprocess()(calibration)["image"]
    forget_preprocessing_lane()  # calibration is not the run: its block marks no start-up phase
    with torch.inference_mode():
        inputs = [predictor.inputs(images[i : i + 16]) for i in range(0, len(images), 16)]
    return calibrate(predictor.model, inputs)
