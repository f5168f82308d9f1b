"""Node telemetry: CPU utilisation and memory (psutil), and Ray's object store use and spilled
bytes for this node's raylet (the numbers `ray memory` shows)."""

from __future__ import annotations

import time
from typing import Any

from bench.telemetry import Samples


class HostSampler:
    def __init__(self, node: str, samples: Samples, raylet: tuple[str, int] | None = None):
        self.node = node
        self.samples = samples
        self.raylet = raylet
        try:
            import psutil
        except ImportError as exc:  # a bare GPU box may lack it: degrade, never crash
            self.psutil = None
            samples.mark_unavailable("host", "*", f"psutil unavailable: {exc}")
        else:
            self.psutil = psutil
            psutil.cpu_percent(interval=None)  # the first call only primes the counter

    def sample(self, ts: float | None = None) -> None:
        ts = time.time() if ts is None else ts
        if self.psutil is not None:
            self.samples.add(ts, self.node, "host", "cpu_pct", self.psutil.cpu_percent(interval=None))
            self.samples.add(ts, self.node, "host", "mem_used_bytes", self.psutil.virtual_memory().used)
        if self.raylet is None:
            return
        try:
            stats = _store_stats(*self.raylet)
        except Exception as exc:  # private Ray API: degrade, never crash
            self.samples.mark_unavailable("object_store", "*", f"raylet stats unavailable: {exc}")
            self.raylet = None
            return
        self.samples.add(ts, self.node, "object_store", "used_bytes", stats.object_store_bytes_used)
        self.samples.add(ts, self.node, "object_store", "spilled_bytes", stats.spilled_bytes_total)


def _store_stats(address: str, port: int) -> Any:
    from ray._private.internal_api import node_stats

    return node_stats(address, port, include_memory_info=False).store_stats
