"""Ctrl-C and SIGTERM during data-prep leave no half-written shard that looks valid, and the
dataset resumes; during bench run they leave the predictions so far, marked incomplete. A run
killed outright cannot clean up: the next run names what it left."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from bench.results import bundle
from data_prep.common.manifest import ShardRecord, verify
from data_prep.common.storage import DatasetDir

from helpers import synth_dataset

ARGS = ["synth", "--images", "2400", "--rows-per-shard", "100", "--workers", "2", "-q"]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_mid_run_keeps_only_complete_shards_and_resumes(tmp_path, cli, signum, code):
    out = tmp_path / "d"
    exe = Path(sys.executable).parent / "data-prep"
    proc = subprocess.Popen([str(exe), *ARGS, "--out", str(out)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (recorded := list(out.glob("_records/shard-*.json"))):
        assert proc.poll() is None and time.monotonic() < deadline, "no shard finished in time"
        time.sleep(0.05)
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # what Ctrl-C does: the whole foreground group
    else:
        proc.send_signal(signum)  # what `docker stop` does: the main process only
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "run the same command again to finish the rest" in stderr

    assert not (out / "manifest.json").exists()
    assert not list(out.glob("shards/*.tmp"))
    dataset = DatasetDir(str(out))
    finished = sorted(out.glob("shards/*.parquet"))
    # The main process stops handing out work: besides the shards recorded when the signal was
    # sent, only those already handed to the 2 workers finish (2 running, at most 3 in the
    # pool's call queue), never the whole queue. (The count in the message can lag the disk: a
    # shard may be recorded before the main process has collected its result.)
    assert 0 < len(finished) <= len(recorded) + 5 < 24
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


def model_actor_started(pid: int) -> bool:
    """Whether a model actor runs among ``pid``'s descendants (which come and go meanwhile)."""
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "MapWorker" in " ".join(child.cmdline()):
                return True
        except psutil.Error:  # gone, or a zombie, since it was listed
            continue
    return False


def bench_run_in_inference(data: Path, out: Path) -> subprocess.Popen:
    """`bench run` in a child process, returned once its model actor exists or its first
    predictions are being written."""
    exe = Path(sys.executable).parent / "bench"
    proc = subprocess.Popen([str(exe), "run", "--data", str(data), "--out", str(out), "--precision", "fp32",
                             "--batch-size", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not model_actor_started(proc.pid) and not list(out.parent.glob(f".{out.name}.partial-*/predictions.parquet")):
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not reach inference in time"
        time.sleep(0.2)
    time.sleep(3)
    return proc


@pytest.mark.parametrize("signum, code, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_stop_signal_during_bench_run_leaves_an_incomplete_bundle_that_does_not_verify(tmp_path, cli, signum, code, name):
    data = synth_dataset(tmp_path / "data", 96)
    out = tmp_path / "bundle"
    proc = bench_run_in_inference(data, out)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-3000:]
    assert f"{name} stopped the run after" in stderr and "marked incomplete" in stderr
    marker = json.loads((out / "INCOMPLETE.json").read_text())
    assert marker["complete"] is False and marker["reason"] == name and marker["images_expected"] == 96
    assert not (out / "SHA256SUMS").exists() and not (out / "result.json").exists()
    verified = cli("bench", "verify", str(out))
    assert verified.returncode == 1 and "incomplete run" in verified.stderr


def test_a_bench_run_killed_outright_is_named_by_the_next_run(tmp_path, cli):
    data = synth_dataset(tmp_path / "data", 96)
    proc = bench_run_in_inference(data, tmp_path / "killed")
    ray_processes = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()  # as the OOM killer would: no handler runs
    proc.communicate(timeout=60)
    for child in ray_processes:  # some of a local Ray outlive a killed driver
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    left = list(tmp_path.glob(".killed.partial-*"))
    assert len(left) == 1 and not (tmp_path / "killed").exists()
    second = cli("bench", "run", "--data", str(data), "--out", str(tmp_path / "second"), "--precision", "fp32", "-q",
                 check=True)
    assert f"note: {left[0]} was left by a bench run that was killed" in second.stderr
    assert left[0].is_dir()  # named, never deleted: what it holds is the user's to look at
    assert bundle.verify(tmp_path / "second").ok


def test_only_staging_directories_of_runs_gone_from_this_host_count_as_abandoned(tmp_path):
    finished = subprocess.Popen(["true"])
    finished.wait()
    host = socket.gethostname()
    dead = tmp_path / f".a.partial-{host}-{finished.pid}-0123abcd"
    alive = tmp_path / f".b.partial-{host}-{os.getpid()}-0123abcd"
    elsewhere = tmp_path / f".c.partial-not-{host}-{finished.pid}-0123abcd"
    unknown = tmp_path / ".d.partial-0123abcd"  # named before pids were
    for path in (dead, alive, elsewhere, unknown):
        path.mkdir()
    writer = bundle.BundleWriter(tmp_path / "new")
    assert writer.abandoned == [dead]
    assert writer.staging.name.startswith(f".new.partial-{host}-{os.getpid()}-")
    assert bundle.name_of(writer.staging) == "new" == bundle.name_of(tmp_path / "new")  # what its report is titled
    writer.abandon()
