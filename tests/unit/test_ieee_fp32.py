"""fp32 is IEEE fp32 wherever the model runs: on a GPU, torch would otherwise let cuDNN run fp32
convolutions as TF32, and the reference pipeline and the fp32 side of every precision cost would
silently not be fp32 (bench.stages.model.ieee_fp32)."""

from __future__ import annotations

import pytest
import torch

from bench.variants import variant


@pytest.mark.parametrize("pipeline", ["fast", "reference"])
def test_every_model_stage_turns_tf32_off(pipeline):
    # torch's flags are properties of its backend modules (monkeypatch cannot restore them)
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True  # torch's default for cuDNN convolutions
        torch.backends.cuda.matmul.allow_tf32 = True
        variant(pipeline).predictor()("random", 0, "cpu", "fp32", False)
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is False
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
