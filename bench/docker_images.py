"""`bench image build|run`: the pinned images through the Docker SDK for Python.

Builds pass the pinned build arguments (revision, creation time from SOURCE_DATE_EPOCH,
version, base image); runs mount /data and /results from the host, give the container the
GPUs when Docker has the NVIDIA runtime, stream its logs, and leave the bundle on the host with
the image id and digest recorded in its env.json.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from bench import __version__
from bench.results import bundle
from bench.results.envinfo import REPO, git_commit
from bench.errors import BenchError

FLAVORS = {"cpu": "Dockerfile.cpu", "gpu": "Dockerfile.gpu"}
SOURCE = "https://github.com/raybench-kit/raybench-kit"


def client():
    import docker

    try:
        docker_client = docker.from_env()
        docker_client.ping()
        return docker_client
    except Exception as exc:  # DockerException, connection errors...
        raise BenchError(f"no Docker daemon answers ({exc}); start dockerd or set DOCKER_HOST") from exc


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH if set, else the commit time: the same commit builds the same labels."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        return int(subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=REPO, capture_output=True,
                                  text=True, check=True).stdout.strip())
    except (OSError, ValueError, subprocess.CalledProcessError):
        return 0


def build_args(base_image: str | None, wheelhouse: str | None, bake_weights: bool) -> dict[str, str]:
    created = dt.datetime.fromtimestamp(source_date_epoch(), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    args = {"VERSION": __version__, "REVISION": git_commit()["commit"] or "unknown", "CREATED": created,
            "SOURCE": SOURCE, "BAKE_WEIGHTS": "true" if bake_weights else "false"}
    if base_image:
        args["BASE_IMAGE"] = base_image
    if wheelhouse:
        args["WHEELHOUSE"] = wheelhouse
    return args


def tag_for(flavor: str, tag_prefix: str = "bench") -> str:
    return f"{tag_prefix}:{flavor}"


def build(flavors: list[str], base_image: str | None = None, wheelhouse: str | None = None,
          bake_weights: bool = False, log: Callable[[str], None] = print) -> dict[str, str]:
    """Build the images; returns flavor -> image id. Build logs stream through ``log``."""
    docker_client = client()
    args = build_args(base_image, wheelhouse, bake_weights)
    built = {}
    for flavor in flavors:
        tag = tag_for(flavor)
        for chunk in docker_client.api.build(path=str(REPO), dockerfile=FLAVORS[flavor], tag=tag, buildargs=args,
                                             network_mode="host", rm=True, forcerm=True, decode=True, pull=False):
            if "stream" in chunk:
                log(chunk["stream"].rstrip("\n"))
            if "error" in chunk:
                raise BenchError(f"building {tag} from {FLAVORS[flavor]} failed: {chunk['error'].strip()}")
        built[flavor] = docker_client.images.get(tag).id
    return built


def shm_bytes() -> int:
    """/dev/shm for the container: room for Ray's default object store (30% of RAM)."""
    import psutil

    return int(psutil.virtual_memory().total * 0.35)


def has_nvidia_runtime(docker_client) -> bool:
    return "nvidia" in (docker_client.info().get("Runtimes") or {})


def run(flavor: str, args: list[str], data_dir: Path, results_dir: Path, gpus: bool | None = None,
        log: Callable[[str], None] = print) -> tuple[int, Path | None]:
    """Run one benchmark container; returns (exit code, bundle path on the host or None)."""
    from docker.types import DeviceRequest

    docker_client = client()
    image = docker_client.images.get(tag_for(flavor))
    for directory in (data_dir, results_dir):
        directory.mkdir(parents=True, exist_ok=True)
    use_gpus = has_nvidia_runtime(docker_client) if gpus is None else gpus
    container = docker_client.containers.run(
        image.id,
        command=args,
        detach=True,
        user=f"{os.getuid()}:{os.getgid()}",
        volumes={str(data_dir.resolve()): {"bind": "/data", "mode": "rw"},
                 str(results_dir.resolve()): {"bind": "/results", "mode": "rw"}},
        environment={"BENCH_IMAGE_ID": image.id,
                     "BENCH_IMAGE_DIGEST": (image.attrs.get("RepoDigests") or [""])[0],
                     "HOME": "/tmp"},
        shm_size=shm_bytes(),  # Ray's object store lives in /dev/shm; Docker's default is 64 MB
        device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])] if use_gpus else None,
    )
    try:
        for line in container.logs(stream=True, follow=True):
            log(line.decode(errors="replace").rstrip("\n"))
        code = container.wait()["StatusCode"]
        stdout = container.logs(stdout=True, stderr=False).decode(errors="replace").strip().splitlines()
    finally:
        container.remove(force=True)
    last = stdout[-1].strip() if stdout else ""
    if code != 0 or not last.startswith("/results/"):
        return code, None
    path = results_dir / Path(last).relative_to("/results")
    verdict = bundle.verify(path)
    if not verdict.ok:
        raise BenchError(f"the container wrote {path}, but it does not verify: {verdict.problems[0]}")
    return code, path
