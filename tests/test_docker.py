"""The pinned images, built and run for real (marked `docker`; needs a Docker daemon).

No registry is reachable here, so the images are built FROM a stand-in base made from Debian
packages (docker/standin/build-base.sh), with the locked wheels served from a local
wheelhouse when this machine has one. The Dockerfiles themselves are the shipped ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench.results import bundle
from bench import docker_images as image
from data_prep.common.cores import usable_cores
from helpers import REPO

pytestmark = [pytest.mark.docker, pytest.mark.slow]
LOCAL_WHEELS = [Path("/opt/pypi/files"), Path("/opt/pypi-more/files")]
WHEELHOUSE_PORT = 38765


def docker_available() -> bool:
    try:
        image.client()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def docker_ready():
    if not docker_available():
        if os.environ.get("BENCH_REQUIRE_TOOLS") == "1":
            pytest.fail("BENCH_REQUIRE_TOOLS=1 but no Docker daemon answers")
        pytest.skip("no Docker daemon (CI starts one; see .ci/run)")


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    """Serve the machine's local wheels on loopback, if it has any (else pip uses PyPI)."""
    sources = [d for d in LOCAL_WHEELS if d.is_dir()]
    if not sources:
        yield None
        return
    root = tmp_path_factory.mktemp("wheelhouse")
    for directory in sources:
        for wheel in directory.iterdir():
            target = root / wheel.name
            if not target.exists():
                target.symlink_to(wheel)
    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # pip fetches hundreds of files; keep the test log readable
            pass

    handler = partial(QuietHandler, directory=str(root))
    try:
        # A fixed port keeps the WHEELHOUSE build argument, and so Docker's layer cache, stable.
        server = ThreadingHTTPServer(("127.0.0.1", WHEELHOUSE_PORT), handler)
    except OSError:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="session")
def base_image(docker_ready):
    proc = subprocess.run([str(REPO / "docker/standin/build-base.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def images(base_image, wheelhouse):
    started = time.perf_counter()
    revision = image.build_args(None, None, False)["REVISION"]
    built = image.build(["cpu", "gpu"], base_image=base_image, wheelhouse=wheelhouse, log=lambda line: None)
    print(f"\nimages built in {time.perf_counter() - started:.0f} s: {built}")
    return {**built, "revision": revision}


def docker(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def test_hadolint_passes_on_both_dockerfiles():
    import shutil as _shutil

    hadolint = _shutil.which("hadolint") or str(Path(os.sys.executable).parent / "hadolint")
    for dockerfile in ("Dockerfile.gpu", "Dockerfile.cpu"):
        proc = subprocess.run([hadolint, dockerfile], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, f"{dockerfile}:\n{proc.stdout}{proc.stderr}"


def test_the_two_dockerfiles_differ_only_in_their_flavor():
    cpu = (REPO / "Dockerfile.cpu").read_text().splitlines()
    gpu = (REPO / "Dockerfile.gpu").read_text().splitlines()
    body = lambda lines: [l for l in lines if not l.startswith("#") and "BENCH_FLAVOR=" not in l]  # noqa: E731
    gpu_only = {"ENV NVIDIA_VISIBLE_DEVICES=all \\", "    NVIDIA_DRIVER_CAPABILITIES=compute,utility \\",
                '    NVIDIA_REQUIRE_CUDA="cuda>=13.0"', ""}
    assert [l for l in body(gpu) if l not in gpu_only] == [l for l in body(cpu) if l != ""]


def test_images_have_the_same_packages_labels_and_user(images, base_image):
    fingerprints = {flavor: docker("run", "--rm", image.tag_for(flavor), "env").stdout.strip() for flavor in image.FLAVORS}
    assert fingerprints["cpu"] == fingerprints["gpu"] and "fingerprint" in fingerprints["cpu"]
    for flavor in image.FLAVORS:
        attrs = json.loads(docker("image", "inspect", image.tag_for(flavor)).stdout)[0]
        labels = attrs["Config"]["Labels"]
        # The commit checked out when the images were built (HEAD may move during the session).
        assert labels["org.opencontainers.image.revision"] == images["revision"]
        assert len(images["revision"]) == 40
        assert labels["org.opencontainers.image.base.name"] == base_image
        assert labels["org.opencontainers.image.created"].endswith("Z")
        assert attrs["Config"]["User"] == "10001:10001"
        assert set(attrs["Config"]["Volumes"]) == {"/data", "/results"}


def test_gpu_image_help_and_clear_refusal_without_a_gpu(images):
    helped = docker("run", "--rm", "bench:gpu", "--help")
    assert helped.returncode == 0 and "Usage" in helped.stdout
    refused = docker("run", "--rm", "bench:gpu", "mini")
    assert refused.returncode == 3
    assert "sees no GPU" in refused.stderr and "--device cpu" in refused.stderr


@pytest.mark.parametrize("limit, cores", [((), None), (("--cpus", "1"), 1), (("--cpuset-cpus", "0"), 1)])
def test_cpu_image_sizes_torch_threads_to_the_containers_cpu_limit(images, limit, cores):
    # Sized to the machine, a CPU model actor's threads would queue for a quota they cannot use
    # (--cpus 1 on 2 cores: 2 threads ran 1.4-1.6x slower than 1, docs/performance.md).
    probe = ("import torch; from bench.stages.model import resolve_device; from data_prep.common.cores import usable_cores; "
             "resolve_device('cpu'); print(usable_cores(), torch.get_num_threads())")
    ran = docker("run", "--rm", *limit, "--entrypoint", "python3", "bench:cpu", "-c", probe)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == [str(cores or usable_cores())] * 2


def readme_container_lines() -> list[str]:
    """The README's "Containers" block after its `bench image build` line: what a newcomer types."""
    from doc_commands import commands

    block = [c.text for c in commands(REPO / "README.md", REPO) if c.text.startswith(("mkdir", "docker run"))]
    assert block and block[0].startswith("mkdir") and any("bench:cpu" in c for c in block), block
    return block


# No GPU here: the GPU line runs with its --gpus flag taken out, on mini, with --device cpu (the
# GPU image's fallback, only when asked), which the image needs and the line as written lacks.
GPU_SUBSTITUTE = (("--gpus all ", ""), (" bench:gpu 10G", " bench:gpu mini --device cpu"))


def test_the_readmes_docker_lines_run_as_written_on_dockers_defaults(images, tmp_path):
    """The README's lines exactly (no --shm-size: Docker's 64 MB /dev/shm), in a fresh directory."""
    bundles = []
    for line in readme_container_lines():
        if "bench:gpu" in line:
            for old, new in GPU_SUBSTITUTE:
                assert old in line, line
                line = line.replace(old, new)
        before = set((tmp_path / "results").glob("*")) if (tmp_path / "results").is_dir() else set()
        ran = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
        assert ran.returncode == 0, f"{line}\n{ran.stderr[-3000:]}"
        assert "Traceback" not in ran.stderr, ran.stderr[-3000:]
        if line.startswith("docker run"):
            assert "/dev/shm has" in ran.stderr and "--shm-size=" in ran.stderr, ran.stderr[-3000:]  # the notice
            made = set((tmp_path / "results").glob("*")) - before
            assert len(made) == 1, made
            bundles.extend(made)
    assert len(bundles) == 2
    for path in bundles:
        assert bundle.verify(path).ok
        assert path.stat().st_uid == os.getuid()  # the files are the user's (--user)
    checksums = {json.loads((p / bundle.RESULT).read_text())["predictions_sha256"] for p in bundles}
    assert len(checksums) == 1  # the same packages in both images: the same answers on this CPU


def test_a_results_directory_the_container_cannot_write_is_named_before_any_work(images, tmp_path):
    results = tmp_path / "results"
    results.mkdir(mode=0o755)  # as Docker makes a missing bind-mount source: root's
    os.chown(results, 0, 0)
    ran = docker("run", "--rm", "-v", f"{results}:/results", "bench:cpu", "mini")
    assert ran.returncode == 2, ran.stderr
    assert "/results is not writable" in ran.stderr and "--user" in ran.stderr and "mkdir -p data results" in ran.stderr
    assert list(results.iterdir()) == []


@pytest.mark.parametrize("flavor", ["cpu", "gpu"])
def test_micro_runs_in_the_images_on_dockers_defaults(images, flavor):
    ran = docker("run", "--rm", f"bench:{flavor}", "micro", "mini")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "blocks over" in ran.stdout and "Traceback" not in ran.stderr


def test_perf_runs_in_the_image_on_dockers_defaults_and_prints_only_json(images):
    script = ("data-prep synth --images 16 --rows-per-shard 8 --out /data/tiny -q > /dev/null && "
              "bench perf --data /data/tiny --memory-scale 2 --min-seconds 0.2 --json")
    ran = docker("run", "--rm", "--entrypoint", "sh", "bench:cpu", "-c", script, timeout=1800)
    assert ran.returncode == 0, ran.stderr[-3000:]
    figures = json.loads(ran.stdout)  # stdout is the one JSON object, nothing else
    assert figures["images"] == 16 and figures["device"].startswith("cpu")


def test_bench_image_run_records_the_image_in_the_bundle(images, tmp_path):
    code, path = image.run("cpu", ["mini", "-q"], tmp_path / "data", tmp_path / "results", gpus=False,
                           log=lambda line: None)
    assert code == 0 and path is not None and bundle.verify(path).ok
    env = json.loads((path / bundle.ENV).read_text())
    assert env["container"]["image_id"] == images["cpu"] and env["container"]["flavor"] == "cpu"
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=path, capture_output=True, text=True)
    assert check.returncode == 0


@pytest.fixture
def compose_cluster(images, tmp_path):
    compose = shutil.which("docker-compose")
    command = [compose] if compose else ["docker", "compose"]
    data, results = tmp_path / "data", tmp_path / "results"
    data.mkdir()
    results.mkdir()
    env = {**os.environ, "DATA_DIR": str(data), "RESULTS_DIR": str(results),
           "BENCH_UID": str(os.getuid()), "BENCH_GID": str(os.getgid())}
    project = ["-f", str(REPO / "docker/compose.yaml"), "-p", f"benchtest{os.getpid()}"]
    up = subprocess.run([*command, *project, "up", "-d"], env=env, capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    try:
        yield {"command": command, "project": project, "env": env, "data": data, "results": results}
    finally:
        subprocess.run([*command, *project, "down", "-v", "-t", "5"], env=env, capture_output=True)


def on_head(c) -> list[str]:
    """The command prefix that runs a command in the cluster's head container."""
    return [*c["command"], *c["project"], "exec", "-T", "head"]


def synth_on_head(c, images: int, out: str) -> None:
    """Once all three nodes joined, make a synthetic dataset on the head's data volume."""
    wait_for_three_nodes(c)
    prep = subprocess.run([*on_head(c), "data-prep", "synth", "--images", str(images), "--rows-per-shard", "4",
                           "--out", out, "-q"], env=c["env"], capture_output=True, text=True)
    assert prep.returncode == 0, prep.stderr


def wait_for_three_nodes(c) -> None:
    exec_head = on_head(c)
    deadline = time.monotonic() + 180
    while True:
        status = subprocess.run([*exec_head, "python3", "-c",
                                 "import ray, json; ray.init(address='auto', logging_level='ERROR'); "
                                 "print(json.dumps([n['Resources'] for n in ray.nodes() if n['Alive']]))"],
                                env=c["env"], capture_output=True, text=True)
        nodes = json.loads(status.stdout.strip().splitlines()[-1]) if status.returncode == 0 and status.stdout.strip() else []
        if len(nodes) == 3:
            break
        assert time.monotonic() < deadline, f"cluster did not reach 3 nodes: {status.stderr[-2000:]}"
        time.sleep(3)


def test_compose_cluster_runs_a_benchmark_across_three_nodes(compose_cluster):
    c = compose_cluster
    synth_on_head(c, 24, "/data/tiny")
    run = subprocess.run([*on_head(c), "bench", "run", "--data", "/data/tiny", "--address", "auto", "--batch-size", "4",
                          "-q", "--out", "/results/cluster"], env=c["env"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    path = c["results"] / "cluster"
    assert bundle.verify(path).ok
    result = json.loads((path / bundle.RESULT).read_text())
    env = json.loads((path / bundle.ENV).read_text())
    by_id = {n["node_id"]: n["resources"] for n in env["nodes"]}
    assert len(by_id) == 3
    gpu_node = next(i for i, r in by_id.items() if r.get("GPU"))
    cpu_worker = next(i for i, r in by_id.items() if r.get("CPU") == 2)
    assert result["images_per_node"]["model_node"] == {gpu_node: 24}
    assert set(result["images_per_node"]["preprocess_node"]) <= set(by_id) - {gpu_node}
    assert cpu_worker in result["placement"]["preprocess_nodes"]


def test_killing_a_worker_container_mid_run_loses_nothing_or_fails_loudly(compose_cluster):
    """The CPU-only worker (preprocessing) is killed while the run streams: Ray must redo its
    lost work on the head, with every image exactly once, or the run must fail with no bundle."""
    c = compose_cluster
    synth_on_head(c, 96, "/data/kill")
    run = subprocess.Popen([*on_head(c), "bench", "run", "--data", "/data/kill", "--address", "auto", "--batch-size", "4",
                            "--precision", "fp32", "--stall-timeout", "240", "-q", "--out", "/results/killed"],
                           env=c["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(20)  # actors up, blocks streaming
    assert run.poll() is None, "the run ended before the fault could be injected"
    kill = subprocess.run([*c["command"], *c["project"], "kill", "cpu-worker"], env=c["env"], capture_output=True, text=True)
    assert kill.returncode == 0, kill.stderr
    _, stderr = run.communicate(timeout=900)
    path = c["results"] / "killed"
    if run.returncode == 0:
        assert bundle.verify(path).ok
        ids = pq.read_table(path / bundle.PREDICTIONS, columns=["id"]).column("id").to_pylist()
        assert sorted(ids) == [f"synth-{i:09d}" for i in range(96)]  # exactly once
    else:
        assert "error:" in stderr, stderr[-3000:]
        assert not bundle.verify(path).ok
