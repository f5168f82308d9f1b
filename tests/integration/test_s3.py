"""s3:// datasets through pyarrow's filesystems, against a local S3 server (moto) on loopback."""

from __future__ import annotations

import json
import socket

import pytest
from data_prep.cli import app
from data_prep.common.errors import DataPrepError
from typer.testing import CliRunner

from helpers import free_port


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    import boto3

    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": s3_endpoint, "AWS_EC2_METADATA_DISABLED": "true"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    name = f"bench-{free_port()}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def test_synth_writes_verifies_and_resumes_on_s3(bucket, tmp_path):
    runner = CliRunner()
    uri = f"s3://{bucket}/synth"
    args = ["synth", "--images", "30", "--rows-per-shard", "10", "--workers", "2", "-q"]
    made = runner.invoke(app, [*args, "--out", uri])
    assert made.exit_code == 0, made.output
    local = runner.invoke(app, [*args, "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output

    info = runner.invoke(app, ["info", uri, "--json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.output)["dataset_sha256"] == json.loads((tmp_path / "local/manifest.json").read_text())["dataset_sha256"]
    verified = runner.invoke(app, ["verify", uri])
    assert verified.exit_code == 0 and "OK: 3 shard(s)" in verified.output

    again = runner.invoke(app, [*args, "--out", uri])
    assert again.exit_code == 0 and "kept 3 already complete" in again.output


def test_missing_bucket_is_a_clear_error(s3_endpoint, bucket):
    result = CliRunner().invoke(app, ["synth", "--images", "5", "-q", "--out", f"s3://{bucket}-missing/x"])
    assert isinstance(result.exception, DataPrepError)
    assert f"cannot write to s3://{bucket}-missing/x" in str(result.exception)


def test_a_missing_bucket_on_read_is_named(s3_endpoint, bucket):
    from data_prep.common.manifest import load_manifest

    with pytest.raises(DataPrepError, match=f"bucket '{bucket}-gone' does not exist"):
        load_manifest(f"s3://{bucket}-gone/data")


def test_missing_credentials_give_a_clear_error(s3_endpoint, bucket, monkeypatch, tmp_path):
    """moto enforcing authentication, and no credentials anywhere."""
    import moto.settings
    from data_prep.common.manifest import load_manifest

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    with pytest.raises(DataPrepError) as caught:
        load_manifest(f"s3://{bucket}/data")
    assert f"cannot read s3://{bucket}/data/manifest.json" in str(caught.value)
    assert "check the credentials (AWS_ACCESS_KEY_ID" in str(caught.value)


class BadServer:
    """A TCP endpoint that either accepts and never answers, or drops every connection."""

    def __init__(self, mode: str):
        import threading

        self.mode, self.connections = mode, []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            if self.mode == "drop":
                conn.close()


@pytest.mark.parametrize("mode, symptoms", [("stall", ["Timeout was reached"]),
                                            ("drop", ["Empty reply from server", "Connection reset by peer"])])
def test_a_stalling_or_dropping_server_fails_in_bounded_time(mode, symptoms, tmp_path):
    import subprocess
    import sys
    import time

    from helpers import REPO

    server = BadServer(mode)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": server.url, "AWS_EC2_METADATA_DISABLED": "true",
           "RAYBENCH_S3_CONNECT_TIMEOUT_S": "1", "RAYBENCH_S3_REQUEST_TIMEOUT_S": "2", "RAYBENCH_S3_MAX_ATTEMPTS": "3"}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "data_prep.cli", "info", "s3://bucket/data"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert "cannot read s3://bucket/data/manifest.json" in proc.stderr
    assert any(symptom in proc.stderr for symptom in symptoms), proc.stderr
    assert "RAYBENCH_S3_REQUEST_TIMEOUT_S" in proc.stderr and "Traceback" not in proc.stderr
    assert 1 <= len(server.connections) <= 3  # retried, and only as often as allowed
    assert elapsed < 60


@pytest.fixture(scope="module")
def s3_env(s3_endpoint):
    """Credentials and endpoint in the environment before Ray starts, as on a real cluster."""
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": s3_endpoint, "AWS_EC2_METADATA_DISABLED": "true"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


def test_bench_runs_on_s3_data_and_predicts_what_it_does_locally(s3_env, ray_local, s3_endpoint, tmp_path):
    import boto3
    from bench.config import RunConfig
    from bench.results import bundle
    from bench.run import runner

    name = f"bench-run-{free_port()}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    args = ["synth", "--images", "16", "--rows-per-shard", "8", "-q"]
    cli = CliRunner()
    assert cli.invoke(app, [*args, "--out", f"s3://{name}/d"]).exit_code == 0
    assert cli.invoke(app, [*args, "--out", str(tmp_path / "local")]).exit_code == 0
    config = RunConfig(batch_size=8, precision="fp32")
    secret = "PLANTED-S3-SECRET-9f3a"  # credentials in the URI must reach S3, and no bundle file
    remote = runner.run(None, f"s3://AKIAPLANTED:{secret}@{name}/d", config, None, tmp_path / "remote",
                        show_progress=False, telemetry_interval_s=None)
    for file in remote.iterdir():
        assert secret.encode() not in file.read_bytes() and b"AKIAPLANTED" not in file.read_bytes(), file.name
    local = runner.run(None, str(tmp_path / "local"), config, None, tmp_path / "localb", show_progress=False, telemetry_interval_s=None)
    results = [json.loads((p / bundle.RESULT).read_text()) for p in (remote, local)]
    assert results[0]["images"] == 16 and results[0]["dataset"]["uri"] == f"s3://{name}/d"
    assert results[0]["predictions_sha256"] == results[1]["predictions_sha256"]
    assert results[0]["dataset_sha256"] == results[1]["dataset_sha256"]


def test_cost_and_calibration_images_read_from_s3_as_locally(bucket, tmp_path):
    import numpy as np
    from bench.run import datasets
    from bench.stages import precision, quantize
    from data_prep.synth import image_id

    args = ["synth", "--images", "30", "--rows-per-shard", "20", "-q"]
    cli = CliRunner()
    assert cli.invoke(app, [*args, "--out", f"s3://{bucket}/d"]).exit_code == 0
    assert cli.invoke(app, [*args, "--out", str(tmp_path / "local")]).exit_code == 0
    remote, local = (datasets.resolve(None, uri, show_progress=False) for uri in (f"s3://{bucket}/d", str(tmp_path / "local")))
    for take in (precision.sample_batch, quantize.calibration_batch):
        got, expected = (take(d.shard_files, d.filesystem) for d in (remote, local))
        assert got["id"].tolist() == expected["id"].tolist() and np.array_equal(got["image"], expected["image"])
    last = quantize.calibration_batch(remote.shard_files, remote.filesystem)["id"].tolist()
    assert last == [image_id(i) for i in range(20, 30)]  # the last shard holds 10 rows: all of them
