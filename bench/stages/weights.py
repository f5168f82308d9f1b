"""ResNet-50 with verified weights: torchvision's ImageNet weights from a file, or seeded random.

ImageNet weights are never downloaded here (the kit must work offline): they are read from
torch hub's cache or a given file, and their sha256 is checked against the hash prefix that
torchvision puts in the file name, exactly as ``torch.hub`` does after a download.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from torchvision.models import ResNet50_Weights, resnet50

from bench.errors import BenchError

# What the reference used: ResNet50_Weights.DEFAULT.
IMAGENET = ResNet50_Weights.DEFAULT
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


def imagenet_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET.url).name


def state_dict_sha256(model: torch.nn.Module) -> str:
    """A digest of the parameters themselves (names, dtypes, shapes, bytes), in key order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def resolve_weights_file(weights: str) -> Path:
    """The weights file for ``imagenet`` or a path, with an error that says how to provide it."""
    path = imagenet_weights_path() if weights == "imagenet" else Path(weights)
    if not path.is_file():
        raise BenchError(
            f"ResNet-50 weights not found at {path}: download {IMAGENET.url} on a machine with "
            f"internet and copy it to {imagenet_weights_path()} (or set TORCH_HOME), pass "
            "--weights /path/to/file.pth, or use --weights random"
        )
    return path


def load_model(weights: str, seed: int = 0, lane=None) -> tuple[torch.nn.Module, str]:
    """(model in eval mode on the CPU, weights sha256). ``weights``: random, imagenet or a path.
    ``lane`` (bench.stages.startup.Lane), if given, gets the phases marked."""
    mark = lane.mark if lane is not None else (lambda phase: None)
    if weights == "random":
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        model = resnet50(weights=None)
        torch.random.set_rng_state(generator_state)
        mark("model built")
        sha256 = state_dict_sha256(model)
        mark("weights loaded and verified")
        return model.eval(), sha256
    path = resolve_weights_file(weights)
    with path.open("rb") as handle:
        sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
    expected = _HASH_IN_NAME.search(path.name)
    if expected and not sha256.startswith(expected.group(1)):
        raise BenchError(
            f"{path} is corrupt: its sha256 {sha256[:16]}... does not start with {expected.group(1)} as its "
            "name says; download it again"
        )
    # A skeleton without storage: its random initialisation would be overwritten at once.
    with torch.device("meta"):
        model = resnet50(weights=None)
    mark("model built")
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), assign=True)
    except Exception as exc:
        raise BenchError(f"{path} is not a ResNet-50 state dict: {exc}") from exc
    mark("weights loaded and verified")
    return model.eval(), sha256
