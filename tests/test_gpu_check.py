"""The one-call GPU check runs without Ray; here on the CPU, where it must still report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_gpu_check_drives_the_pipeline_stages_and_reports(tmp_path):
    # -S-free but Ray-free: block `import ray` to prove the check does not need it.
    blocker = tmp_path / "ray.py"
    blocker.write_text("raise ImportError('Ray is not on the GPU machine')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--images", "20", "--batch-size", "8", "--device", "cpu",
         "--min-seconds", "0.2", "--loader-workers", "2", "--prefetch", "2"],
        cwd=REPO, capture_output=True, text=True, env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["device"] == "cpu" and result["images"] == 20  # every image, last batch partial
    assert result["model_only_img_s"] > 0 and result["end_to_end_img_s"] > 0
    assert result["end_to_end_over_ceiling"] == pytest.approx(result["end_to_end_img_s"] / result["model_only_img_s"])
    assert result["telemetry"]["nodes"]  # host telemetry sampled alongside
    if result["precision"] != "fp32":
        assert result["precision_cost"]["images"] == 20  # the first shard's first 64 rows, as `bench run`


def test_rebatching_keeps_every_image_once_in_order():
    import numpy as np

    from bench.gpu_check import rebatched

    groups = [{"id": np.arange(start, min(start + 5, 23))} for start in range(0, 23, 5)]
    batches = list(rebatched(iter(groups), 8))
    assert [len(b["id"]) for b in batches] == [8, 8, 7]
    assert np.concatenate([b["id"] for b in batches]).tolist() == list(range(23))
