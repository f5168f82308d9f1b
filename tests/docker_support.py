"""Docker for the tests: the pinned images built FROM a stand-in base (no registry is reachable
here: docker/standin/build-base.sh makes one from Debian packages), the machine's local wheels
served on loopback, and a compose cluster of the images. The Dockerfiles are the shipped ones."""

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

import pytest

from bench import docker_images
from helpers import REPO

LOCAL_WHEELS = [Path("/opt/pypi/files"), Path("/opt/pypi-more/files")]
WHEELHOUSE_PORT = 38765


def docker_available() -> bool:
    try:
        docker_images.client()
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
    revision = docker_images.build_args(None, None, False)["REVISION"]
    built = docker_images.build(["cpu", "gpu"], base_image=base_image, wheelhouse=wheelhouse, log=lambda line: None)
    print(f"\nimages built in {time.perf_counter() - started:.0f} s: {built}")
    return {**built, "revision": revision}


def docker(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


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


