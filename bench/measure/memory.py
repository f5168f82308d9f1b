"""Peak memory of this machine's Ray worker processes, sampled while a run streams.

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


class WorkerMemorySampler:
    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self.peaks: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="worker-memory", daemon=True)

    def __enter__(self) -> WorkerMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        for process in psutil.process_iter(["name", "cmdline"]):
            title = " ".join(process.info["cmdline"] or []) or process.info["name"] or ""
            if not title.startswith("ray::") or title.startswith("ray::IDLE"):
                continue
            try:
                memory = process.memory_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            private = memory.rss - memory.shared
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
