"""s3:// datasets through pyarrow's filesystems, against a local S3 server (moto) on loopback."""

from __future__ import annotations

import json
import socket

import pytest
from typer.testing import CliRunner

from data_prep.cli import app
from data_prep.errors import DataPrepError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
