"""`bench micro --engine` on the three engines, run from the peers' environment (`make peers`)
as the README shows: the same data cut into the same partitions, each engine's own figures."""

from __future__ import annotations

import json
import math
import os
import subprocess

import pyarrow.parquet as pq
import pytest

from helpers import peers_or_skip, synth_dataset, version_in_peers


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
