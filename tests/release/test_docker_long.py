"""The longer Docker runs: a worker container killed mid-run, the GPU image's microbenchmark, and
`bench image run` recording its image in the bundle."""

from __future__ import annotations

import json
import subprocess
import time

import pyarrow.parquet as pq
from bench import docker_images
from bench.results import bundle

from docker_support import docker, on_head, synth_on_head


def test_micro_runs_in_the_gpu_image_on_dockers_defaults(images):
    ran = docker("run", "--rm", "bench:gpu", "micro", "mini")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "partitions over" in ran.stdout and "Traceback" not in ran.stderr


def test_bench_image_run_records_the_image_in_the_bundle(images, tmp_path):
    code, path = docker_images.run("cpu", ["mini", "-q"], tmp_path / "data", tmp_path / "results", gpus=False,
                           log=lambda line: None)
    assert code == 0 and path is not None and bundle.verify(path).ok
    env = json.loads((path / bundle.ENV).read_text())
    assert env["container"]["image_id"] == images["cpu"] and env["container"]["flavor"] == "cpu"
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=path, capture_output=True, text=True)
    assert check.returncode == 0



def test_killing_a_worker_container_mid_run_loses_nothing_or_fails_loudly(compose_cluster):
    """The CPU-only worker (preprocessing) is killed while the run streams: Ray must redo its
    lost work on the head, with every image exactly once, or the run must fail with no bundle."""
    c = compose_cluster
    synth_on_head(c, 96, "/data/kill")
    run = subprocess.Popen([*on_head(c), "bench", "run", "--data", "/data/kill", "--address", "auto", "--batch-size", "4",
                            "--precision", "fp32", "--stall-timeout", "240", "-q", "--out", "/results/killed"],
                           env=c["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(20)  # actors up, blocks streaming
    assert run.poll() is None, "the run ended before the fault could be injected"
    kill = subprocess.run([*c["command"], *c["project"], "kill", "cpu-worker"], env=c["env"], capture_output=True, text=True)
    assert kill.returncode == 0, kill.stderr
    _, stderr = run.communicate(timeout=900)
    path = c["results"] / "killed"
    if run.returncode == 0:
        assert bundle.verify(path).ok
        ids = pq.read_table(path / bundle.PREDICTIONS, columns=["id"]).column("id").to_pylist()
        assert sorted(ids) == [f"synth-{i:09d}" for i in range(96)]  # exactly once
    else:
        assert "error:" in stderr, stderr[-3000:]
        assert not bundle.verify(path).ok
