"""What a result is a fact about: software versions, hardware, cluster nodes, container."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import __version__
from bench.results.secrets import allowed_environment
from data_prep.common.cores import usable_cores

PACKAGES = ("ray", "torch", "torchvision", "pyarrow", "numpy", "pillow", "nvidia-ml-py", "pyspark", "daft")
REPO = Path(__file__).resolve().parents[2]  # the checkout (or /opt/bench in the images)


def git_commit() -> dict[str, Any]:
    """The kit's commit: from git when run from a checkout, else from the image's label."""
    if os.environ.get("BENCH_GIT_COMMIT"):
        return {"commit": os.environ["BENCH_GIT_COMMIT"], "dirty": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                    capture_output=True, text=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def gpus() -> list[dict[str, Any]]:
    import torch

    if not torch.cuda.is_available():
        return []
    return [
        {"index": i, "name": torch.cuda.get_device_name(i),
         "memory_bytes": torch.cuda.get_device_properties(i).total_memory}
        for i in range(torch.cuda.device_count())
    ]


def driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no library, no driver, no GPU: all mean "unknown"
        return None


def container() -> dict[str, Any]:
    """Image id and digest are passed in by `bench image run`; flavor and baked weights are
    set by the Dockerfiles."""
    return {
        "in_container": Path("/.dockerenv").exists() or bool(os.environ.get("BENCH_FLAVOR")),
        "flavor": os.environ.get("BENCH_FLAVOR"),
        "image_id": os.environ.get("BENCH_IMAGE_ID"),
        "image_digest": os.environ.get("BENCH_IMAGE_DIGEST") or None,
        "weights_baked": os.environ.get("BENCH_WEIGHTS_BAKED") == "true",
    }


def capture(nodes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "kit": {"version": __version__, **git_commit()},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "driver": driver_version(),
        "cpu": {"model": cpu_model(), "count": os.cpu_count(), "usable": usable_cores()},
        "gpus": gpus(),
        "nodes": nodes or [],
        "container": container(),
        "environment": allowed_environment(),
        "python_packages_sha256": package_fingerprint()["sha256"],
    }


def package_fingerprint() -> dict[str, Any]:
    """The installed Python package set and one digest of it: equal digests, equal software."""
    packages = sorted({f"{d.metadata['Name'].lower()}=={d.version}" for d in metadata.distributions()})
    digest = hashlib.sha256(("python " + platform.python_version() + "\n" + "\n".join(packages)).encode()).hexdigest()
    return {"python": platform.python_version(), "packages": packages, "sha256": digest}
