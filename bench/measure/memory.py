"""Peak memory sampled while a run streams: of this machine's Ray worker processes, one by one
(WorkerMemorySampler), and of this process with all its children together (TreeMemorySampler:
whatever the engine, its JVM, Daft's UDF processes or Ray's cluster started from here).

Ray names its worker processes ``ray::<task or actor>``; private memory is what grows if a
stage holds on to data instead of streaming it. It is read as resident minus shared pages
(Linux's RssAnon: the heap a worker allocated, not the object store's shared memory nor shared
libraries), one small /proc read per worker. Not USS (psutil's memory_full_info): it walks
every mapping, CPU taken from the run being timed, and counts the object-store pages that only
one worker has mapped.
"""

from __future__ import annotations

import threading
from typing import Any

import psutil


class Sampler:
    """Calls ``sample`` every ``interval_s`` while the ``with`` block runs."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        raise NotImplementedError


def private_bytes(process: psutil.Process) -> int:
    memory = process.memory_info()
    return memory.rss - memory.shared


class TreeMemorySampler(Sampler):
    """The peak of this process's and all its descendants' private memory, summed."""

    def __init__(self, interval_s: float = 0.5):
        super().__init__(interval_s)
        self.peak_bytes = 0

    def sample(self) -> None:
        me = psutil.Process()
        total = 0
        for process in [me, *me.children(recursive=True)]:
            try:
                total += private_bytes(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        self.peak_bytes = max(self.peak_bytes, total)

    def peak_mb(self) -> float:
        return self.peak_bytes / 1e6


class WorkerMemorySampler(Sampler):
    def __init__(self, interval_s: float = 0.5):
        super().__init__(interval_s)
        self.peaks: dict[int, dict[str, Any]] = {}

    def sample(self) -> None:
        for process in psutil.process_iter(["name", "cmdline"]):
            title = " ".join(process.info["cmdline"] or []) or process.info["name"] or ""
            if not title.startswith("ray::") or title.startswith("ray::IDLE"):
                continue
            try:
                private = private_bytes(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            peak = self.peaks.setdefault(process.pid, {"worker": "", "private_bytes": 0})
            if private >= peak["private_bytes"]:  # a task worker's title changes with each task it runs
                peak.update(worker=title.split()[0], private_bytes=private)

    def peak_mb(self) -> float:
        """The largest private memory any one worker reached, in MB."""
        return max((p["private_bytes"] for p in self.peaks.values()), default=0) / 1e6

    def by_worker(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for peak in self.peaks.values():
            out[peak["worker"]] = max(out.get(peak["worker"], 0.0), peak["private_bytes"] / 1e6)
        return out
