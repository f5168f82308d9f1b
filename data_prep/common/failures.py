"""Failures from the engines under the CLIs (Ray, pyarrow, torch) as one line: what failed,
where, and the fix. The known ones get their own message; any other is named by its type and
message, with the full traceback kept in a log file (or shown with --verbose)."""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

_STORE_MINIMUM = re.compile(r"cap object store memory usage at (\d+) bytes, but the minimum allowed is (\d+) bytes")
_STORE_OVER_SHM = re.compile(r"object store size \(([\d.]+) GB\) exceeds /dev/shm size \(([\d.]+) GB\)")
_PORT_IN_USE = re.compile(r"address already in use|failed to start the grpc server", re.I)
_PORT = re.compile(r"specified port is (\d+)|port (\d+)")
_AUTH_TOKEN = re.compile(r"InvalidAuthToken|Authentication token is missing or incorrect")
_NO_CLUSTER = re.compile(r"(could not find any running ray instance|timed out while waiting for gcs|"
                         r"failed to connect to gcs|gcs (server|client).*(unavailable|timed out))", re.I)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _mb(value: str) -> str:
    return f"{int(value) / 2**20:,.0f} MB"


def explain(exc: BaseException) -> str | None:
    """One line for a failure of a known kind, or None."""
    for cause in causes(exc):
        text = str(cause)
        if found := _STORE_MINIMUM.search(text):
            return (f"Ray's object store would get {_mb(found[1])}, below Ray's minimum of {_mb(found[2])}: this "
                    "machine or container has too little memory for Ray (it gives its store 30% of it); in Docker, "
                    "give the container at least 1 GB (--memory) and, for speed, --shm-size=2g")
        if found := _STORE_OVER_SHM.search(text):
            return (f"Ray's object store ({found[1]} GB) does not fit in /dev/shm ({found[2]} GB): pass a bigger "
                    "--shm-size to docker run (or mount a bigger /dev/shm), or set RAY_OBJECT_STORE_ALLOW_SLOW_STORAGE=1 "
                    "to keep the store in a file on disk")
        if isinstance(cause, OSError) and (cause.errno == errno.ENOSPC or "No space left on device" in text):
            where = f" ({cause.filename})" if cause.filename else ""
            return (f"no space left on a device{where}: free space there; Ray keeps its session files and spilled "
                    f"objects under {ray_temp_dir()} (set RAY_TMPDIR to move them to a disk with room)")
        if (isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE) or _PORT_IN_USE.search(text):
            port = _PORT.search(text)
            which = f"port {port[1] or port[2]}" if port else "a port Ray needs"
            return (f"{which} is already in use, so Ray could not start: stop what holds it (`ss -ltnp` names it), "
                    "or let Ray choose free ports (unset RAY_GCS_SERVER_PORT)")
        if _AUTH_TOKEN.search(text):
            return ("the Ray cluster asks for an authentication token that this process does not send: Ray's nodes "
                    "turn token authentication on when they find ~/.ray/auth_token; give this process the same token "
                    "(RAY_AUTH_MODE=token, with ~/.ray/auth_token or RAY_AUTH_TOKEN), or start every node with "
                    "RAY_AUTH_MODE=disabled")
        if _NO_CLUSTER.search(text):
            return (f"the Ray cluster does not answer ({first_line(text)}): start it (`ray start --head`), check "
                    "--address / RAY_ADDRESS, or leave --address out to run on this machine")
    return None


def ray_temp_dir() -> str:
    """Where Ray writes its session files: RAY_TMPDIR, else the system temp dir, then ``ray``."""
    return os.path.join(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir(), "ray")


def first_line(text: str) -> str:
    """The most telling line of an error message: Ray's task errors put the cause last."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if len(lines) > 1 and lines[0].startswith("ray::") else lines[0]


def log_dir() -> Path:
    """Where tracebacks of unexpected failures are kept: the user's cache, else the temp dir."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "raybench" / "logs"
    try:
        base.mkdir(parents=True, exist_ok=True)
        return base
    except OSError:
        return Path(tempfile.gettempdir())


def save_traceback(tool: str, exc: BaseException) -> Path | None:
    """The full traceback of ``exc`` in a new log file; its path, or None if none could be written."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = log_dir() / f"{tool}-{stamp}-{os.getpid()}.log"
    try:
        path.write_text("".join(traceback.format_exception(exc)))
    except OSError:
        return None
    return path
