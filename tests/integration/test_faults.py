"""Faults injected into real runs: a model actor killed mid-run, a stalled cluster, a full disk.
Each run either finishes with every image exactly once or fails loudly with no bundle that
verifies."""

from __future__ import annotations

import errno
import os
import re
import signal
import threading
import time

import psutil
import pyarrow.parquet as pq
import pytest
from bench.config import RunConfig
from bench.errors import BenchError
from bench.results import bundle
from bench.run import predictions, runner

from helpers import run_cli, synth_dataset, tmpfs

IMAGES = 48


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synth_dataset(tmp_path_factory.mktemp("faults") / "data", IMAGES)


def model_actor_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if "MapWorker" in " ".join(p.info["cmdline"] or []) and "Predictor" in " ".join(p.info["cmdline"] or [])]


def test_killing_the_model_actor_mid_run_loses_and_duplicates_nothing(ray_local, data, tmp_path):
    killed: list[int] = []

    def kill_once_busy() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pids = model_actor_pids()
            if pids:
                time.sleep(4)  # let it load the model and finish a few batches
                for pid in model_actor_pids():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_once_busy, daemon=True)
    killer.start()
    try:
        path = runner.run(None, str(data), RunConfig(batch_size=4, precision="fp32"), None, tmp_path / "b",
                          show_progress=False, telemetry_interval_s=None)
    except BenchError as exc:  # the other acceptable outcome: loud, and nothing that verifies
        assert not (tmp_path / "b").exists(), exc
        pytest.fail(f"Ray did not recover from a killed actor (acceptable, but record it): {exc}")
    killer.join()
    assert killed, "the actor was never seen, so nothing was tested"
    ids = pq.read_table(path / bundle.PREDICTIONS, columns=["id"]).column("id").to_pylist()
    assert sorted(ids) == [f"synth-{i:09d}" for i in range(IMAGES)]  # each exactly once
    assert bundle.verify(path).ok


def test_a_stalled_stream_fails_loudly():
    def stalls():
        yield 1
        time.sleep(30)
        yield 2

    got = []
    with pytest.raises(BenchError, match="no predictions arrived for 1 s"):
        for item in predictions.within_stall_limit(stalls(), 1):
            got.append(item)
    assert got == [1]


def test_errors_in_the_stream_reach_the_caller():
    def breaks():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(predictions.within_stall_limit(breaks(), 5))


@pytest.fixture
def tiny_disk(tmp_path):
    with tmpfs(tmp_path / "disk", 96 * 1024) as mount:
        yield mount


def test_a_full_disk_while_writing_the_bundle_leaves_nothing_that_verifies(ray_local, data, tiny_disk):
    with pytest.raises(BenchError, match="no space left on the device holding .* nothing was kept"):
        runner.run(None, str(data), RunConfig(batch_size=8, precision="fp32"), None, tiny_disk / "bundle",
                   show_progress=False)
    assert list(tiny_disk.iterdir()) == []  # no bundle, no staging directory


def test_a_full_disk_while_writing_shards_is_one_line_and_the_same_command_resumes(tmp_path):
    args = ["--images", "40", "--rows-per-shard", "10", "--workers", "2", "-q"]
    whole = tmp_path / "whole"
    run_cli("data-prep", "synth", "--out", str(whole), *args, check=True)
    shard = max(p.stat().st_size for p in whole.glob("shards/*.parquet"))
    with tmpfs(tmp_path / "disk", 6 * shard) as disk:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * int(3.5 * shard))  # room left for about two of the four shards
        out = disk / "d"
        full = run_cli("data-prep", "synth", "--out", str(out), *args)
        assert full.returncode == 2, full.stderr
        assert "Traceback" not in full.stderr
        assert re.search(rf"error: no space left on the device holding {re.escape(str(out))}: [0-3] of 4 shard", full.stderr)
        assert "free space and run the same command again" in full.stderr
        assert not list(out.glob("shards/*.tmp")), "a shard being written is discarded"
        assert not (out / "manifest.json").exists()
        filler.unlink()
        run_cli("data-prep", "synth", "--out", str(out), *args, check=True)
        assert (out / "manifest.json").read_bytes() == (whole / "manifest.json").read_bytes()


def test_a_full_disk_when_writing_the_manifest_is_the_same_one_line(tmp_path, monkeypatch):
    from data_prep import jobs, synth
    from data_prep.common.errors import DataPrepError

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jobs, "write_manifest", no_space)
    with pytest.raises(DataPrepError, match=r"no space left on the device holding .*: 2 of 2 shard\(s\) are complete and kept"):
        synth.generate(str(tmp_path / "d"), 20, size=None, seed=0, fmt="raw", rows_per_shard=10, shards=None,
                       workers=1, show_progress=False)
