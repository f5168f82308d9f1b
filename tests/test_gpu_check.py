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
        [sys.executable, "-m", "bench.gpu_check", "--images", "12", "--batch-size", "4", "--device", "cpu",
         "--iterations", "1"],
        cwd=REPO, capture_output=True, text=True, env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["device"] == "cpu" and result["images"] == 12
    assert result["model_only_img_s"] > 0 and result["end_to_end_img_s"] > 0
    assert result["end_to_end_over_ceiling"] == pytest.approx(result["end_to_end_img_s"] / result["model_only_img_s"])
    assert result["telemetry"]["nodes"]  # host telemetry sampled alongside
