"""The peers' longer checks, run from their environment (`make peers`) as the README shows:
`bench micro --engine` on the three engines cuts the same data into the same partitions, each
engine with its own figures; Daft on a Ray cluster (`--address`) runs on its Ray runner."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers import (bundle_logits, free_port, peers_or_skip, plain_pytorch_logits, relative_error, synth_dataset,
                     version_in_peers)


@pytest.fixture(scope="module")
def peers_bin():
    return peers_or_skip()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synth_dataset(tmp_path_factory.mktemp("data") / "peers", 48, 16)


@pytest.mark.parametrize("engine, library", [("ray", "ray"), ("spark", "pyspark"), ("daft", "daft")])
def test_each_engine_sleeps_once_per_partition_of_the_same_data(peers_bin, data, engine, library):
    proc = subprocess.run([str(peers_bin / "bench"), "micro", "--data", str(data), "--engine", engine, "--json"],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout)
    row_groups = sum(pq.ParquetFile(f).metadata.num_row_groups for f in sorted((data / "shards").glob("*.parquet")))
    assert figures["engine"] == engine and figures["version"] == version_in_peers(peers_bin, library)
    if engine == "daft":  # its native runner cuts batches at its own edges too, and counts the calls it made
        assert figures["partitions"] >= row_groups
    else:
        assert figures["partitions"] == row_groups
    assert figures["ideal_s"] == math.ceil(figures["partitions"] / figures["parallelism"])
    assert figures["measured_s"] >= figures["ideal_s"] - 0.05  # every partition slept its second
    assert figures["overhead_s"] == pytest.approx(figures["measured_s"] - figures["ideal_s"])


def bench_run(tool: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(tool), "run", *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"})


def test_daft_on_a_ray_cluster_runs_on_its_ray_runner_with_the_same_predictions(peers_bin, data, tmp_path):
    # A `ray start` head of its own, stopped by its process group: `ray stop` would stop every Ray here.
    port = free_port()
    head = subprocess.Popen([str(peers_bin / "ray"), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    try:
        for _ in range(60):  # until the head answers
            if subprocess.run([str(peers_bin / "ray"), "status", f"--address=127.0.0.1:{port}"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(1)
        proc = bench_run(peers_bin / "bench", "--data", str(data), "--engine", "daft", "--address", f"127.0.0.1:{port}",
                         "--precision", "fp32", "--save-logits", "-q", "--out", str(tmp_path / "bundle"))
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(60)
    result = json.loads((tmp_path / "bundle" / "result.json").read_text())
    assert result["launcher"]["options"] == {"runner": "ray", "address": f"127.0.0.1:{port}"}
    local = bench_run(peers_bin / "bench", "--data", str(data), "--engine", "local", "--precision", "fp32", "-q",
                      "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr[-3000:]
    assert result["predictions_sha256"] == json.loads((tmp_path / "local" / "result.json").read_text())["predictions_sha256"]
    assert relative_error(bundle_logits(tmp_path / "bundle"), plain_pytorch_logits(data)) < 1e-4


def test_spark_on_a_standalone_cluster_gives_the_same_predictions(peers_bin, data, tmp_path):
    # A Spark master and one worker of its own (spark-class, as `start-master.sh` runs them), on loopback.
    spark_class = next((peers_bin.parent / "lib").glob("python3*/site-packages/pyspark/bin/spark-class"))
    port = free_port()
    env = {**os.environ, "SPARK_HOME": str(spark_class.parent.parent), "SPARK_LOG_DIR": str(tmp_path / "logs"),
           "SPARK_WORKER_DIR": str(tmp_path / "work")}
    master = subprocess.Popen([str(spark_class), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(free_port())], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    worker = subprocess.Popen([str(spark_class), "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}",
                               "--cores", "2", "--memory", "4g", "--webui-port", str(free_port())],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                              env=env)
    try:
        for line in worker.stdout:  # until the worker has joined the master
            if "Successfully registered with master" in line:
                break
        threading.Thread(target=worker.stdout.read, daemon=True).start()  # its log must not fill the pipe
        proc = bench_run(peers_bin / "bench", "--data", str(data), "--engine", "spark", "--spark-master",
                         f"spark://127.0.0.1:{port}", "--precision", "fp32", "--save-logits", "-q",
                         "--out", str(tmp_path / "bundle"))
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        for server in (worker, master):
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(60)
    result = json.loads((tmp_path / "bundle" / "result.json").read_text())
    assert result["launcher"] == {"name": "spark", "version": version_in_peers(peers_bin, "pyspark"),
                                  "options": {"master": f"spark://127.0.0.1:{port}"}}
    assert relative_error(bundle_logits(tmp_path / "bundle"), plain_pytorch_logits(data)) < 1e-4
