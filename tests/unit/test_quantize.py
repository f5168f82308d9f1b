"""int8 (bench.stages.quantize): one calibration gives one model, bit for bit, wherever it is loaded,
and it computes nearly the fp32 function (checked against torchvision's plain fp32 ResNet-50)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models import resnet50

from bench.stages import quantize
from bench.errors import BenchError
from bench.variants import variant


def raw_batch(images: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"id": np.array([f"i{seed}-{n}" for n in range(images)], dtype=object),
            "label": np.zeros(images, dtype=np.int32),
            "image": rng.integers(0, 256, (images, 256, 256, 3), dtype=np.uint8)}


def calibrated(seed: int) -> bytes:
    return quantize.int8_state_for(variant("fast"), "random", 0, raw_batch(8, seed=seed))


@pytest.fixture(scope="module")
def state():
    return calibrated(seed=1)


def test_calibration_is_deterministic(state):
    assert quantize.state_sha256(calibrated(seed=1)) == quantize.state_sha256(state)
    assert quantize.state_sha256(calibrated(seed=2)) != quantize.state_sha256(state)  # scales come from the images


@pytest.mark.parametrize("name", ["fast", "reference"])
def test_int8_predictor_stays_close_to_plain_fp32_pytorch(state, name):
    chosen = variant(name)
    predictor = chosen.predictor()("random", 0, "cpu", "int8", False, int8_state=state)
    assert predictor.model is None  # int8 actors hold no fp32 model; the fp32 call below loads it
    batch = chosen.preprocess()(raw_batch(4, seed=3))
    torch.manual_seed(0)
    reference = resnet50(weights=None).eval()  # what load_model("random", 0) must also build
    with torch.inference_mode():
        crops = torch.from_numpy(raw_batch(4, seed=3)["image"][:, 16:240, 16:240]).permute(0, 3, 1, 2).float() / 255
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        exact = reference((crops - mean) / std)
    got = predictor.logits(batch["image"], "int8")
    relative = torch.linalg.vector_norm(got - exact, dim=1) / torch.linalg.vector_norm(exact, dim=1)
    assert 0 < relative.max() < 0.1  # not fp32 (0 would mean int8 was not used), yet close to it
    assert torch.equal(got, predictor.logits(batch["image"], "int8"))  # deterministic
    assert torch.allclose(predictor.logits(batch["image"], "fp32"), exact, rtol=1e-3, atol=1e-3)


def test_int8_without_a_calibrated_model_is_refused():
    with pytest.raises(BenchError, match="calibrated"):
        variant("fast").predictor()("random", 0, "cpu", "int8", False)


def test_an_int8_predictor_checks_the_nodes_fp32_weights_when_it_loads_them(state):
    from bench.stages.weights import load_model

    _, other_sha = load_model("random", 1)
    predictor = variant("fast").predictor()("random", 0, "cpu", "int8", False, expected_weights_sha256=other_sha,
                                            int8_state=state)  # runs the driver's int8 model: no fp32 built yet
    batch = variant("fast").preprocess()(raw_batch(2, seed=3))
    predictor.logits(batch["image"], "int8")
    with pytest.raises(BenchError, match="give every node the same weights file"):
        predictor.logits(batch["image"], "fp32")  # measuring int8's cost against other weights: refused


def test_calibration_leaves_no_mark_on_the_runs_preprocessing_lane(state):
    # The one-process launcher calibrates where it then preprocesses: the run's first block,
    # not calibration's, must mark "first block read".
    from bench.stages import startup

    startup.forget_preprocessing_lane()
    calibrated(seed=1)
    assert startup._preprocessing is None
