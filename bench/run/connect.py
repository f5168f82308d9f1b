"""Joining a Ray cluster (data_prep.common.ray_cluster), or starting Ray on this machine:
refused within seconds where Ray itself would hang or fail late (a full temp dir, a taken
port), and with an object store that fits the machine (Docker's default /dev/shm included)."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.errors import BenchError
from data_prep.common.cli import handle_sigterm
from data_prep.common.failures import ray_temp_dir
from data_prep.common.ray_cluster import engine_log_level, join, quiet_engine


def connect(address: str | None) -> None:
    """Join ``address`` (refused within seconds when nothing answers there) or start a local
    Ray whose object store fits this machine; keep Ray's INFO chatter off the user's screen."""
    import ray

    if ray.is_initialized():
        return
    if address:
        join(address)
    else:
        check_local_start()
        store, notice = object_store()
        if notice:
            Console(stderr=True, highlight=False, soft_wrap=True).print(notice, markup=False)
        # "local": a new Ray of its own, even where a `ray start` cluster runs on this machine
        # (Ray would join that one); clusters are joined with --address alone.
        quiet_engine()
        ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=engine_log_level(),
                 **store)
        quiet_engine()
    handle_sigterm()  # ray.init replaced ours with one that aborts: a SIGTERM must leave a marked bundle


def object_store() -> tuple[dict[str, Any], str | None]:
    """``ray.init`` arguments for a local Ray's object store, and a notice for the user (or None).

    Ray's default store (30% of memory) lives in /dev/shm when it fits. Where it does not (Docker's
    default /dev/shm is 64 MB), the store is a file in the temp dir instead: Ray itself falls back
    so for stores under 10 GB and refuses above. The file measured as fast as /dev/shm on a 2-core
    CPU machine (docs/docker.md, "Shared memory"), so the kit takes it rather than fail."""
    from ray._common.utils import get_system_memory
    from ray._private import ray_constants

    wanted = min(int(get_system_memory() * ray_constants.DEFAULT_OBJECT_STORE_MEMORY_PROPORTION),
                 ray_constants.DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES)
    try:
        shm = shutil.disk_usage("/dev/shm").free
    except OSError:
        shm = 0
    if shm >= wanted:
        return {}, None
    directory = tempfile.gettempdir()
    suggested = math.ceil(wanted * 1.1 / 2**30)
    return ({"object_store_memory": wanted, "_plasma_directory": directory},
            f"note: /dev/shm has {shm / 2**20:,.0f} MB free, less than Ray's {wanted / 2**30:,.1f} GB object store, "
            f"so the store is a file in {directory}; `docker run --shm-size={suggested}g` keeps it in memory "
            f"(what that buys: docs/docker.md, \"Shared memory\")")


# Ray's session files (logs, sockets) take a few MB; below this, its node times out starting.
MIN_TEMP_FREE_BYTES = 64 * 2**20


def check_local_start() -> None:
    """Refuse at once what makes a local Ray hang for a minute before it fails: a full disk
    under its temp dir, or a fixed GCS port (RAY_GCS_SERVER_PORT) that something else holds."""
    import socket

    temp = Path(ray_temp_dir())
    existing = next(p for p in (temp, *temp.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < MIN_TEMP_FREE_BYTES:
        raise BenchError(f"only {free / 2**20:,.1f} MB free under {temp}, Ray's temp dir: Ray keeps its session files "
                         f"and spilled objects there. Free space, or set RAY_TMPDIR to a directory on a disk with room")
    port = os.environ.get("RAY_GCS_SERVER_PORT")
    if port:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("", int(port)))
            except OSError as exc:
                raise BenchError(f"port {port} (RAY_GCS_SERVER_PORT) is already in use ({exc.strerror}): stop what "
                                 "holds it (`ss -ltnp` names it), or unset RAY_GCS_SERVER_PORT to let Ray choose") from None
