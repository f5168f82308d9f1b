"""The three engines, run from the peers' environment (`make peers`) as the README shows:
`bench perf --peers` and `bench run --engine` on the same data give the same predictions and
logits as Ray and as plain PyTorch, and a failure leaves no bundle. (`bench micro --engine`:
tests/release/test_peers_long.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess

import shutil
from pathlib import Path

import pytest

from helpers import (REPO, bundle_logits, peers_or_skip, plain_pytorch_logits, relative_error, run_cli, synth_dataset,
                     version_in_peers)

@pytest.fixture(scope="module")
def peers_bin():
    return peers_or_skip()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synth_dataset(tmp_path_factory.mktemp("data") / "peers", 48, 16)


def test_the_ray_path_keeps_its_own_pyarrow(peers_bin):
    # daft needs pyarrow<26: the peers get it in their environment, the kit's lock keeps its own.
    main = run_cli("python", "-c", "import pyarrow; print(pyarrow.__version__)", check=True).stdout.strip()
    lock = [line.split("==")[1].split()[0] for line in (REPO / "requirements" / "lock.txt").read_text().splitlines()
            if line.startswith("pyarrow==")]
    assert [main] == lock and int(version_in_peers(peers_bin, "pyarrow").split(".")[0]) < 26


def bench_run(tool: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(tool), "run", *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"})


@pytest.fixture(scope="module")
def peers_perf(peers_bin, data, tmp_path_factory):
    """`bench perf --peers` as the README gives it, on the small dataset: every engine's bundle."""
    out = tmp_path_factory.mktemp("perf") / "peers"
    proc = subprocess.run([str(peers_bin / "bench"), "perf", "--peers", "--data", str(data), "--min-seconds", "0.5",
                           "--out", str(out)], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


@pytest.fixture(scope="module")
def runs(peers_perf):
    out, _ = peers_perf
    return {engine: out / "runs" / case for engine, case in
            [("ray", "ray-first"), ("spark", "spark"), ("daft", "daft"), ("local", "local"), ("ray-again", "ray")]}


def test_perf_peers_gives_each_engine_its_figures_and_ratios(peers_perf):
    out, shown = peers_perf
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True).returncode == 0
    figures = json.loads((out / "perf.json").read_text())["figures"]
    rows = {row["engine"]: row for row in figures["engines"]}
    assert sorted(rows) == ["daft", "local", "ray", "spark"] and figures["same_predictions"]
    cases = {case["name"]: case for case in json.loads((out / "perf.json").read_text())["cases"]}
    ray_img_s = (cases["ray-first"]["img_s"] + cases["ray"]["img_s"]) / 2
    for engine, row in rows.items():
        assert row["img_s"] > 0 and row["startup_s"] > 0 and row["peak_private_mb"] > 0, row
        assert row["over_ray"] == pytest.approx(row["img_s"] / ray_img_s)
        assert row["over_local"] == pytest.approx(row["img_s"] / cases["local"]["img_s"])
        assert f"{row['over_ray']:.2f}x" in shown
    assert rows["ray"]["over_ray"] == pytest.approx(1.0) and rows["local"]["over_local"] == pytest.approx(1.0)


def test_every_engine_writes_a_bundle_that_verifies_with_its_name_and_version(peers_bin, runs):
    for engine, library in [("ray", "ray"), ("spark", "pyspark"), ("daft", "daft")]:
        run_cli("bench", "verify", str(runs[engine]), check=True)  # the kit's own verifier, exactly-once included
        result = json.loads((runs[engine] / "result.json").read_text())
        assert result["launcher"]["name"] == engine
        assert result["launcher"]["version"] == version_in_peers(peers_bin, library)
        assert result["images"] == result["dataset_images"] == 48


def test_the_engines_agree_on_predictions_and_logits_at_fp32(runs, data):
    # Random weights put most synthetic images in one class: the logits show the same work was done.
    sums = {engine: json.loads((path / "result.json").read_text())["predictions_sha256"] for engine, path in runs.items()}
    assert len(set(sums.values())) == 1, sums
    reference = plain_pytorch_logits(data)
    for engine, path in runs.items():
        assert relative_error(bundle_logits(path), reference) < 1e-4, engine
    for engine in ("spark", "daft"):
        assert relative_error(bundle_logits(runs[engine]), bundle_logits(runs["ray"])) < 1e-4, engine


@pytest.mark.parametrize("engine, named", [("spark", "Spark"), ("daft", "Daft")])
def test_a_failure_mid_run_leaves_no_bundle(peers_bin, data, tmp_path, engine, named):
    # A shard damaged after it was made (same size, so only reading it finds out): the run fails
    # when the engine reaches it, in one line, and leaves nothing that `bench verify` accepts.
    damaged = tmp_path / "damaged"
    shutil.copytree(data, damaged)
    shard = sorted((damaged / "shards").glob("*.parquet"))[-1]
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 3: len(raw) // 3 + 4096] = bytes(4096)
    shard.write_bytes(bytes(raw))
    proc = bench_run(peers_bin / "bench", "--data", str(damaged), "--engine", engine, "--precision", "fp32", "-q",
                     "--out", str(tmp_path / "bundle"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"the pipeline failed on {named}" in proc.stderr and "No bundle was written" in proc.stderr, proc.stderr[-2000:]
    if engine == "spark":
        # The kit's one line and nothing of the JVM's: its notices, and the traceback its Python
        # workers may print as the failed job tears them down, are in the log the line names.
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stderr[-3000:]
        log = Path(re.search(r"Spark's own log: (\S+)\)", lines[0])[1]).read_text()
        assert shard.name in log and "ERROR" in log
    assert not (tmp_path / "bundle").exists()
    assert run_cli("bench", "verify", str(tmp_path / "bundle")).returncode != 0

