"""The cluster journey at small scale, as a user runs it: a Ray cluster of two `ray start`
nodes that share no data directory (the worker's view of one directory is a tmpfs of its own),
an S3 endpoint on loopback (moto, with IAM enforced where a test says so), then
`data-prep synth --out s3://... --address` and `bench run --data s3://... --address`."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from helpers import free_port, run_cli

BIN = Path(sys.executable).parent
MB = 1 << 20
IMAGES, ROWS = 192, 8  # three of the fast pipeline's 16 MiB read blocks: work for two model actors


@pytest.fixture(scope="module")
def s3():
    """moto's server with two IAM users: a writer (s3:*) and a reader (s3:Get*/List*). Requests
    are authenticated only while a test sets moto.settings.INITIAL_NO_AUTH_ACTION_COUNT to 0."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="setup", aws_secret_access_key="setup")
    keys = {}
    for user, actions in (("writer", ["s3:*"]), ("reader", ["s3:Get*", "s3:List*"])):
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    common = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true"}
    boto3.client("s3", **{"endpoint_url": endpoint, "region_name": "us-east-1",
                          "aws_access_key_id": keys["writer"]["AWS_ACCESS_KEY_ID"],
                          "aws_secret_access_key": keys["writer"]["AWS_SECRET_ACCESS_KEY"]}).create_bucket(Bucket="kit")
    yield {"endpoint": endpoint, "writer": {**common, **keys["writer"]}, "reader": {**common, **keys["reader"]},
           "nobody": {**common, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"}}
    server.stop()


@pytest.fixture
def enforce_auth(monkeypatch):
    import moto.settings

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)


def node_env(credentials: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_ADDRESS"))}
    # Explicit: Ray turns token authentication on for nodes that find a ~/.ray/auth_token.
    return {**env, "RAY_AUTH_MODE": "disabled", **credentials}


class Cluster:
    """`ray start` nodes on this machine; the workers each in a mount namespace of their own."""

    def __init__(self, private: Path, credentials: dict[str, str]):
        self.port, self.private, self.credentials = free_port(), private, credentials
        self.address = f"127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        try:
            self.start(["--head", f"--port={self.port}", "--include-dashboard=false", "--disable-usage-stats"], credentials)
            self.wait_for(1)
        except BaseException:
            self.shutdown()
            raise

    def start(self, args: list[str], credentials: dict[str, str], namespace: bool = False) -> subprocess.Popen:
        command = [str(BIN / "ray"), "start", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                   f"--object-store-memory={200 * MB}", "--block", *args]
        if namespace:  # a directory of the driver's machine that this node does not see
            command = ["unshare", "--mount", "sh", "-c",
                       f"mount -t tmpfs none {self.private} && exec {' '.join(command)}"]
        process = subprocess.Popen(command, env=node_env(credentials), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self.processes.append(process)
        return process

    def add_worker(self, credentials: dict[str, str] | None = None) -> subprocess.Popen:
        process = self.start([f"--address={self.address}"], credentials or self.credentials, namespace=True)
        self.wait_for(len(self.processes))
        return process

    def alive(self) -> int:
        probe = ("import ray; ray.init(address=%r, logging_level='ERROR'); "
                 "print('alive', sum(n['Alive'] for n in ray.nodes()))")
        try:
            ran = subprocess.run([sys.executable, "-c", probe % self.address], capture_output=True, text=True,
                                 timeout=60, env=node_env({}))
        except subprocess.TimeoutExpired:
            return 0
        words = ran.stdout.split()
        return int(words[words.index("alive") + 1]) if "alive" in words else 0

    def wait_for(self, nodes: int, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while self.alive() != nodes:
            if time.monotonic() > deadline:
                raise AssertionError(f"the cluster at {self.address} did not reach {nodes} alive node(s)")
            time.sleep(1)

    def stop(self, process: subprocess.Popen, kill: bool = False) -> None:
        """SIGTERM: `ray start --block` stops its node; ``kill``: the node's raylet is SIGKILLed, as
        a spot preemption would."""
        if kill:
            for child in psutil.Process(process.pid).children(recursive=True):
                try:
                    if child.name() == "raylet":
                        child.kill()
                except psutil.Error:  # exited while being looked at
                    continue
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        process.wait(timeout=60)
        self.processes.remove(process)

    def shutdown(self) -> None:
        for process in reversed(list(self.processes)):
            self.stop(process)
        for leftover in psutil.process_iter(["cmdline"]):  # workers the raylets left (Ray's own `ray stop` does this)
            if self.address in " ".join(leftover.info["cmdline"] or []):
                leftover.kill()


@pytest.fixture(scope="module")
def driver_only(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("driver-only")


@pytest.fixture(scope="module")
def cluster(s3, driver_only):
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", f"mount -t tmpfs none {driver_only}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:  # a private mount needs root (CI has it)
        why = f"cannot give a node a private view of a directory here: {probe.stderr.strip()}"
        if os.environ.get("BENCH_REQUIRE_TOOLS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    # `ray start --head` records its address there, and a plain ray.init() joins what it names.
    current = Path("/tmp/ray/ray_current_cluster")
    before = current.read_text() if current.exists() else None
    try:
        made = Cluster(driver_only, s3["writer"])
        try:
            made.add_worker()
            yield made
        finally:
            made.shutdown()
    finally:
        if before is None:
            current.unlink(missing_ok=True)
        else:
            current.write_text(before)


def cli(tool: str, *args: str, credentials: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    ran = subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, env=node_env(credentials), timeout=900)
    return ran, time.monotonic() - started


def s3_client(s3):
    import boto3

    return boto3.client("s3", endpoint_url=s3["endpoint"], region_name="us-east-1",
                        aws_access_key_id=s3["writer"]["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=s3["writer"]["AWS_SECRET_ACCESS_KEY"])


def s3_objects(s3, prefix: str) -> list[str]:
    return [o["Key"] for o in s3_client(s3).list_objects_v2(Bucket="kit", Prefix=prefix).get("Contents", [])]


def s3_sha256s(s3, prefix: str) -> dict[str, str]:
    client = s3_client(s3)
    listed = client.list_objects_v2(Bucket="kit", Prefix=f"{prefix}/shards/")["Contents"]
    return {o["Key"].rpartition("/")[2]: hashlib.sha256(client.get_object(Bucket="kit", Key=o["Key"])["Body"].read())
            .hexdigest() for o in listed if not o["Key"].endswith("/")}  # not pyarrow's directory markers


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """The same set made on this machine alone, without Ray: what the cluster must make."""
    out = tmp_path_factory.mktemp("local") / "d"
    ran, seconds = cli("data-prep", "synth", "--images", str(IMAGES), "--rows-per-shard", str(ROWS), "--out", str(out),
                       "-q", credentials={})
    assert ran.returncode == 0, ran.stderr
    print(f"\none machine, {os.cpu_count()} workers: {IMAGES} images in {seconds:.1f} s ({IMAGES / seconds:.1f} img/s)")
    return out


@pytest.fixture(scope="module")
def on_s3(cluster, s3, local_reference):
    ran, seconds = cli("data-prep", "synth", "--images", str(IMAGES), "--rows-per-shard", str(ROWS),
                       "--out", "s3://kit/d", "--address", cluster.address, credentials=s3["writer"])
    assert ran.returncode == 0, ran.stderr
    print(f"\ntwo-node cluster: {IMAGES} images in {seconds:.1f} s ({IMAGES / seconds:.1f} img/s)")
    return ran


def test_data_prep_on_the_cluster_makes_the_bytes_one_machine_makes(on_s3, local_reference, s3, cluster):
    local = json.loads((local_reference / "manifest.json").read_text())
    info, _ = cli("data-prep", "info", "s3://kit/d", "--json", credentials=s3["reader"])
    assert json.loads(info.stdout)["dataset_sha256"] == local["dataset_sha256"]
    expected = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (local_reference / "shards").iterdir()}
    assert s3_sha256s(s3, "d") == expected  # every shard, hashed here from S3's bytes and the local file's
    assert "shards -> images" in on_s3.stderr  # the progress bar, on stderr
    again, _ = cli("data-prep", "synth", "--images", str(IMAGES), "--rows-per-shard", str(ROWS),
                   "--out", "s3://kit/d", "--address", cluster.address, credentials=s3["writer"])
    assert again.returncode == 0 and f"kept {IMAGES // ROWS} already complete" in again.stdout + again.stderr


def test_a_directory_only_the_driver_has_is_refused_before_any_shard(cluster, driver_only):
    out = driver_only / "d"
    ran, seconds = cli("data-prep", "synth", "--images", "8", "--out", str(out), "--address", cluster.address,
                       credentials={})
    assert ran.returncode != 0
    assert f"1 of 2 node(s) cannot use {out}" in ran.stderr and "cannot see" in ran.stderr, ran.stderr
    assert "s3://" in ran.stderr and "nothing was built" in ran.stderr and "Traceback" not in ran.stderr
    assert not list((out / "shards").glob("*.parquet"))


def test_bench_run_on_the_cluster_uses_both_nodes_and_predicts_what_one_node_does(on_s3, cluster, s3, tmp_path):
    from bench.results import bundle

    args = ["run", "--data", "s3://kit/d", "--precision", "fp32", "--batch-size", "8", "-q"]
    on_cluster, seconds = cli("bench", *args, "--address", cluster.address, "--out", str(tmp_path / "c"),
                              credentials=s3["reader"])
    assert on_cluster.returncode == 0, on_cluster.stderr
    one_node, _ = cli("bench", *args, "--out", str(tmp_path / "one"), credentials=s3["reader"])  # a Ray of its own
    assert one_node.returncode == 0, one_node.stderr
    verified = run_cli("bench", "verify", str(tmp_path / "c"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    results = [json.loads((tmp_path / name / bundle.RESULT).read_text()) for name in ("c", "one")]
    per_node = results[0]["images_per_node"]["model_node"]
    print(f"\ntwo-node bench run: images per model node {per_node}, "
          f"preprocess {results[0]['images_per_node']['preprocess_node']}, {seconds:.1f} s")
    assert len(per_node) == 2 and sum(per_node.values()) == IMAGES
    assert results[0]["placement"]["actors"] == 2 and results[0]["nodes"]["lost"] == []
    assert results[0]["predictions_sha256"] == results[1]["predictions_sha256"]
    assert results[0]["dataset_sha256"] == results[1]["dataset_sha256"]
    # Fetched as the RayJob's entrypoint leaves it: packed to the bucket, unpacked elsewhere.
    packed, _ = cli("bench", "pack", str(tmp_path / "c"), "--out", "s3://kit/runs/c.tar.gz", credentials=s3["writer"])
    assert packed.returncode == 0, packed.stderr
    fetched, _ = cli("bench", "unpack", "s3://kit/runs/c.tar.gz", str(tmp_path / "fetched"), credentials=s3["reader"])
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "fetched" / "c" / bundle.PREDICTIONS).read_bytes() == (tmp_path / "c" / bundle.PREDICTIONS).read_bytes()


def test_data_only_the_driver_can_read_is_refused_before_the_timer(cluster, driver_only, tmp_path):
    data = driver_only / "run"
    made, _ = cli("data-prep", "synth", "--images", "8", "--rows-per-shard", "4", "--out", str(data), "-q", credentials={})
    assert made.returncode == 0, made.stderr
    ran, seconds = cli("bench", "run", "--data", str(data), "--address", cluster.address, "--out", str(tmp_path / "b"),
                       credentials={})
    print(f"\nrefused unreadable data in {seconds:.1f} s (the whole command)")
    assert ran.returncode != 0 and "Traceback" not in ran.stderr
    assert f"1 of 2 node(s) that read the shards cannot read {data}" in ran.stderr, ran.stderr
    assert "sees 0 of 2 shards" in ran.stderr and "s3://" in ran.stderr and "no bundle was written" in ran.stderr
    assert not (tmp_path / "b").exists()


def test_a_named_size_on_a_cluster_gets_the_command_that_makes_it_there(cluster, tmp_path):
    ran, _ = cli("bench", "run", "mini", "--address", cluster.address, "--out", str(tmp_path / "b"), credentials={},)
    assert ran.returncode != 0 and "Traceback" not in ran.stderr
    assert "data-prep synth mini --out s3://BUCKET/synth-mini --address auto" in ran.stderr, ran.stderr
    assert not (tmp_path / "b").exists()


def test_nothing_answering_at_the_address_is_an_error_within_seconds(tmp_path):
    port = free_port()
    for tool, args in (("data-prep", ["synth", "--images", "4", "--out", str(tmp_path / "d")]), ("bench", ["run"])):
        ran, seconds = cli(tool, *args, "--address", f"127.0.0.1:{port}", credentials={})
        assert ran.returncode != 0 and seconds < 30, (seconds, ran.stderr)
        assert f"no Ray cluster answers at 127.0.0.1:{port}" in ran.stderr and "Traceback" not in ran.stderr


@pytest.mark.parametrize("bucket, who, says", [("missing", "writer", "not found"), ("kit", "reader", "cannot write")])
def test_a_bucket_that_is_missing_or_denies_writes_is_refused_before_any_shard(cluster, s3, enforce_auth, bucket, who, says):
    ran, _ = cli("data-prep", "synth", "--images", "8", "--out", f"s3://{bucket}/{who}", "--address", cluster.address,
                 credentials=s3[who])
    assert ran.returncode != 0 and "Traceback" not in ran.stderr
    assert f"s3://{bucket}/{who}" in ran.stderr and says in ran.stderr, ran.stderr
    if bucket == "kit":  # refused before any shard: nothing under the prefix
        assert not s3_objects(s3, f"{who}/")


def test_a_node_without_credentials_is_named_by_the_check_before_the_timer(on_s3, cluster, s3, enforce_auth, tmp_path):
    third = cluster.add_worker(s3["nobody"])
    try:
        ran, seconds = cli("bench", "run", "--data", "s3://kit/d", "--address", cluster.address,
                           "--out", str(tmp_path / "b"), credentials=s3["reader"])
    finally:
        cluster.stop(third)
        cluster.wait_for(2)
    assert ran.returncode != 0 and "Traceback" not in ran.stderr
    assert "1 of 3 node(s) that read the shards cannot read s3://kit/d" in ran.stderr, ran.stderr
    assert not (tmp_path / "b").exists()


def test_a_worker_killed_during_cluster_data_prep_has_its_shards_made_again(cluster, s3, local_reference):
    args = ["synth", "--images", str(IMAGES), "--rows-per-shard", str(ROWS), "--out", "s3://kit/killed",
            "--address", cluster.address]
    proc = subprocess.Popen([str(BIN / "data-prep"), *args], env=node_env(s3["writer"]), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        for p in psutil.process_iter(["cmdline"]):
            if "ray::keep_or_build" in " ".join(p.info["cmdline"] or []):
                p.kill()
                killed = p.pid
                break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=600)
    assert killed is not None, "no shard task was seen to kill"
    assert proc.returncode == 0, err
    assert s3_sha256s(s3, "killed") == {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                                        for p in (local_reference / "shards").iterdir()}
    verified, _ = cli("data-prep", "verify", "s3://kit/killed", credentials=s3["reader"])
    assert verified.returncode == 0, verified.stdout + verified.stderr


def runs_a_model_actor(pid: int) -> bool:
    """Whether the node started as ``pid`` hosts a Ray Data map actor; processes that exit while
    they are looked at (zombies, gone) do not."""
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "ray::MapWorker" in " ".join(child.cmdline()):
                return True
        except psutil.Error:
            continue
    return False


def test_a_node_lost_during_bench_run_is_accounted_for(on_s3, cluster, s3, tmp_path):
    """Its raylet SIGKILLed mid-run: every image predicted once on the remaining nodes, or a
    clear failure and no bundle that verifies; the bundle says which."""
    from bench.results import bundle

    third = cluster.add_worker()
    proc = subprocess.Popen([str(BIN / "bench"), "run", "--data", "s3://kit/d", "--address", cluster.address,
                             "--precision", "fp32", "--batch-size", "4", "--out", str(tmp_path / "b")],
                            env=node_env(s3["reader"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not runs_a_model_actor(third.pid):
            time.sleep(0.1)
    finally:
        # Stopped whatever happened: a third node left alive would change every later test's cluster.
        cluster.stop(third, kill=True)
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"\nnode lost mid-run: exit {proc.returncode}\n{err[-4000:]}")
    assert "Traceback" not in err
    if proc.returncode == 0:
        result = json.loads((tmp_path / "b" / bundle.RESULT).read_text())
        assert len(result["nodes"]["lost"]) == 1 and len(result["nodes"]["at_start"]) == 3
        assert result["images"] == IMAGES
        assert run_cli("bench", "verify", str(tmp_path / "b")).returncode == 0
    else:
        assert "no bundle was written" in err or "INCOMPLETE" in err, err
        assert not (tmp_path / "b").exists() or run_cli("bench", "verify", str(tmp_path / "b")).returncode != 0


def test_the_rayjobs_entrypoint_runs_as_written_on_the_cluster(cluster, s3, tmp_path):
    """docker/rayjob.yaml's entrypoint, with KubeRay's RAY_ADDRESS; substituted: the bucket, the
    results directory, and 10G's 16,232 images for this machine's 192."""
    import yaml
    from bench.results import bundle

    entrypoint = yaml.safe_load((Path(__file__).parents[2] / "docker/rayjob.yaml").read_text())["spec"]["entrypoint"]
    for old, new in (("synth 10G", f"synth --images {IMAGES} --rows-per-shard {ROWS}"), ("s3://BUCKET/", "s3://kit/job/"),
                     ("/results/", f"{tmp_path}/results/")):
        assert old in entrypoint
        entrypoint = entrypoint.replace(old, new)
    ran = subprocess.run(["bash", "-c", entrypoint], capture_output=True, text=True, timeout=900,
                         env={**node_env(s3["writer"]), "RAY_ADDRESS": cluster.address,
                              "PATH": f"{BIN}:{os.environ['PATH']}"})  # the image has the tools on PATH
    assert ran.returncode == 0, ran.stderr[-3000:]
    fetched, _ = cli("bench", "unpack", "s3://kit/job/runs/raybench-10g.tar.gz", str(tmp_path / "fetched"),
                     credentials=s3["reader"])
    assert fetched.returncode == 0, fetched.stderr
    verified = run_cli("bench", "verify", str(tmp_path / "fetched" / "10G"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    result = json.loads((tmp_path / "fetched" / "10G" / bundle.RESULT).read_text())
    assert result["images"] == IMAGES and len(result["images_per_node"]["model_node"]) == 2


def test_imagenet_on_the_cluster_makes_what_one_machine_makes_and_needs_the_source_on_every_node(
        cluster, s3, driver_only, tmp_path):
    import fake_imagenet

    tree = fake_imagenet.make_tree(tmp_path / "ilsvrc")  # where both nodes see it, as on a shared mount
    local, _ = cli("data-prep", "imagenet", str(tree), "--out", str(tmp_path / "local"), "-q", credentials={})
    assert local.returncode == 0, local.stderr
    remote, _ = cli("data-prep", "imagenet", str(tree), "--out", "s3://kit/inet", "--address", cluster.address, "-q",
                    credentials=s3["writer"])
    assert remote.returncode == 0, remote.stderr
    info, _ = cli("data-prep", "info", "s3://kit/inet", "--json", credentials=s3["reader"])
    assert json.loads(info.stdout)["dataset_sha256"] == json.loads((tmp_path / "local/manifest.json").read_text())["dataset_sha256"]

    hidden = fake_imagenet.make_tree(driver_only / "ilsvrc")  # the worker's view of driver_only is its own tmpfs
    refused, _ = cli("data-prep", "imagenet", str(hidden), "--out", "s3://kit/inet-hidden", "--address", cluster.address,
                     credentials=s3["writer"])
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "1 of 2 node(s) cannot read the source" in refused.stderr and f"cannot see {hidden}/" in refused.stderr, refused.stderr
    assert not [k for k in s3_objects(s3, "inet-hidden/shards/") if k.endswith(".parquet")]
