"""A whole run through the one-process launcher, where Ray cannot even be imported."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from bench.results import bundle

from helpers import bundle_logits, plain_pytorch_logits, relative_error, synth_dataset


def test_a_local_run_needs_no_ray_and_gives_plain_pytorchs_logits(tmp_path):
    data = synth_dataset(tmp_path / "tiny", 20)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError('Ray is not installed on this machine')\n")
    # bench's own entry point, with an interpreter where `import ray` fails (the blocker comes first)
    env = {"PYTHONPATH": str(blocker), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", "from bench.cli import main; main()",
                           "run", "--data", str(data), "--launcher", "local", "--precision", "fp32", "--batch-size", "8",
                           "--save-logits", "-q", "--out", str(tmp_path / "b")],
                          cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = tmp_path / "b"
    assert bundle.verify(path).ok
    result = json.loads((path / bundle.RESULT).read_text())
    assert result["launcher"]["name"] == "local" and result["images"] == 20
    assert result["placement"]["device"] == "cpu" and result["config"]["batch_size"] == 8
    assert set(result["images_per_node"]["model_node"]) == {socket.gethostname()}
    assert relative_error(bundle_logits(path), plain_pytorch_logits(data)) < 1e-4
    assert result["telemetry"]["nodes"]  # sampled in this process

