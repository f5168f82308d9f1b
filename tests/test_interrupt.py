"""Ctrl-C during data-prep leaves no half-written shard that looks valid, and resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_prep.manifest import ShardRecord, verify
from data_prep.storage import DatasetDir

ARGS = ["synth", "--images", "1200", "--rows-per-shard", "100", "--workers", "2", "-q"]


@pytest.mark.slow
def test_sigint_mid_run_keeps_only_complete_shards_and_resumes(tmp_path, cli):
    out = tmp_path / "d"
    exe = Path(sys.executable).parent / "data-prep"
    proc = subprocess.Popen([str(exe), *ARGS, "--out", str(out)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("_records/shard-*.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "no shard finished in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "run the same command again to finish the rest" in stderr

    assert not (out / "manifest.json").exists()
    assert not list(out.glob("shards/*.tmp"))
    dataset = DatasetDir(str(out))
    finished = sorted(out.glob("shards/*.parquet"))
    assert 0 < len(finished) < 12
    for shard in finished:  # every file under a final name is complete and recorded
        index = int(shard.stem.split("-")[1])
        record = ShardRecord.load(dataset, index)
        assert record is not None and record.sha256 == dataset.sha256(f"shards/{shard.name}")

    resumed = cli("data-prep", *ARGS, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"kept {len(finished)} already complete" in resumed.stdout
    assert verify(str(out)).ok
    fresh = tmp_path / "fresh"
    cli("data-prep", *ARGS, "--out", str(fresh), check=True)
    assert json.loads((out / "manifest.json").read_text()) == json.loads((fresh / "manifest.json").read_text())
