"""`bench run` and `bench micro` as a user runs them: paths printed, secrets kept out, clear errors."""

from __future__ import annotations

import json
import math
import subprocess

import pyarrow.parquet as pq
import pytest

from helpers import run_cli

PLANTED = {"AWS_SECRET_ACCESS_KEY": "planted-aws-secret-9f8e7d", "AWS_ACCESS_KEY_ID": "AKIAPLANTED0000",
           "HF_TOKEN": "planted-token-1a2b3c"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "tiny"
    run_cli("data-prep", "synth", "--images", "8", "--rows-per-shard", "4", "--out", str(out), "-q", check=True)
    return out


# Ray's own lines that a run printed before the screen was quieted; they stay in Ray's logs.
RAYS_OWN = ("streaming_executor.py", "Progress bars disabled", "authentication_token_setup.py")


@pytest.fixture(scope="module")
def default_run(tiny, tmp_path_factory):
    """`bench run` as a user first types it: no --out, the default screen, secrets in the environment."""
    cwd = tmp_path_factory.mktemp("user")
    return cwd, run_cli("bench", "run", "--data", str(tiny), "--batch-size", "4", cwd=cwd, env=PLANTED)


def test_run_prints_the_bundle_path_last_and_keeps_secrets_out(cli, default_run):
    cwd, proc = default_run
    assert proc.returncode == 0, proc.stderr
    path = cwd / proc.stdout.strip().splitlines()[-1]
    assert path.parent == cwd / "results" / "runs" and path.is_dir()
    assert cli("bench", "verify", str(path)).returncode == 0
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=path, capture_output=True, text=True)
    assert check.returncode == 0
    for file in path.iterdir():
        text = file.read_bytes()
        for secret in PLANTED.values():
            assert secret.encode() not in text, f"{secret} leaked into {file.name}"


def test_the_screen_shows_rays_own_lines_only_with_verbose(cli, tiny, default_run, tmp_path):
    _, quiet = default_run
    assert quiet.returncode == 0, quiet.stderr
    assert not [line for line in quiet.stderr.splitlines() if any(mark in line for mark in RAYS_OWN)], quiet.stderr
    assert "RayDeprecationWarning" not in quiet.stderr and "UserWarning" not in quiet.stderr
    assert "inference" in quiet.stderr  # the kit's own progress bar stays
    # The same run with --verbose shows Ray's lines; its exact --out is then never overwritten.
    target = tmp_path / "exact"
    loud = cli("bench", "run", "--data", str(tiny), "--batch-size", "4", "--out", str(target), "--verbose")
    assert loud.returncode == 0, loud.stderr
    assert "streaming_executor.py" in loud.stderr
    assert loud.stdout.strip().splitlines()[-1] == str(target)
    again = cli("bench", "run", "--data", str(tiny), "-q", "--out", str(target))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert cli("bench", "verify", str(target)).returncode == 0


def test_micro_reports_measured_ideal_and_overhead(cli, tiny):
    proc = cli("bench", "micro", "--data", str(tiny), "--json")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["engine"] == "ray"
    row_groups = sum(pq.ParquetFile(f).metadata.num_row_groups for f in sorted((tiny / "shards").glob("*.parquet")))
    assert figures["partitions"] == row_groups  # the default: one partition per row group, on every engine
    assert figures["ideal_s"] == math.ceil(row_groups / figures["parallelism"])
    assert figures["measured_s"] >= 1.0  # at least one batch slept one second
    assert figures["overhead_s"] == pytest.approx(figures["measured_s"] - figures["ideal_s"])


def test_decoding_raw_data_on_the_device_is_a_clear_error(cli, tiny):
    proc = cli("bench", "run", "--data", str(tiny), "--decode-on-device")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--decode-on-device needs JPEG data" in proc.stderr and "holds raw data" in proc.stderr

