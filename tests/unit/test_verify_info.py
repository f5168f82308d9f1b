"""data-prep verify / info: the interface other tools rely on, and its error messages."""

from __future__ import annotations

import json
import shutil

import pytest


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from helpers import run_cli

    out = tmp_path_factory.mktemp("ds") / "d"
    run_cli("data-prep", "synth", "--out", str(out), "--images", "30", "--rows-per-shard", "10", "-q", check=True)
    return out


@pytest.fixture
def copy(dataset, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(dataset, target)
    return target


def test_verify_passes_on_an_intact_dataset(cli, dataset):
    proc = cli("data-prep", "verify", str(dataset))
    assert proc.returncode == 0, proc.stderr
    assert "OK: 3 shard(s)" in proc.stdout


def test_verify_names_an_altered_shard(cli, copy):
    shard = copy / "shards/shard-000001.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    proc = cli("data-prep", "verify", str(copy))
    assert proc.returncode == 1
    assert "altered: shards/shard-000001.parquet" in proc.stderr
    assert "shard-000000" not in proc.stderr


def test_verify_names_missing_and_extra_shards(cli, copy):
    (copy / "shards/shard-000002.parquet").rename(copy / "shards/shard-000009.parquet")
    proc = cli("data-prep", "verify", str(copy))
    assert proc.returncode == 1
    assert "missing: shards/shard-000002.parquet" in proc.stderr
    assert "extra: shards/shard-000009.parquet" in proc.stderr


def test_verify_catches_an_edited_checksum_list(cli, copy):
    sums = copy / "SHA256SUMS"
    sums.write_text(sums.read_text().replace("shard-000000", "shard-00000X"))
    proc = cli("data-prep", "verify", str(copy))
    assert proc.returncode == 1 and "altered: SHA256SUMS" in proc.stderr


def test_info_json_has_the_promised_keys(cli, dataset):
    proc = cli("data-prep", "info", str(dataset), "--json")
    assert proc.returncode == 0
    info = json.loads(proc.stdout)
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert info["images"] == 30 and info["shards"] == 3 and info["format"] == "raw"
    assert info["dataset_sha256"] == manifest["dataset_sha256"]
    assert info["rejected"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["synth", "huge", "--out", "{tmp}/x"], "unknown size 'huge'"),
        (["synth", "mini", "--out", "/proc/forbidden"], "cannot write to /proc/forbidden"),
        (["synth", "--images", "5", "--format", "png", "--out", "{tmp}/x"], "unknown --format 'png'"),
        (["verify", "{tmp}"], "has no manifest.json"),
        (["info", "{tmp}"], "has no manifest.json"),
    ],
)
def test_user_errors_are_one_clear_line_without_traceback(cli, tmp_path, args, message):
    proc = cli("data-prep", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_progress_goes_to_stderr_and_stdout_keeps_the_summary(cli, tmp_path):
    proc = cli("data-prep", "synth", "--images", "8", "--rows-per-shard", "4", "--out", str(tmp_path / "d"))
    assert proc.returncode == 0, proc.stderr
    assert "shards -> images" in proc.stderr and "shards -> images" not in proc.stdout
    assert "dataset sha256:" in proc.stdout
