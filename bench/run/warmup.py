"""Before the timer: start the cluster's worker processes, as Ray's own multimodal benchmarks do
("to ensure benchmarks compare data processing speed and not cluster startup overhead"), with
what the read and preprocessing tasks import loaded (Variant.warm_modules), so that those tasks
start in warm processes. The reference variant keeps the reference's cold start
(Variant.reference_start)."""

from __future__ import annotations

import importlib
import os
import time
from typing import Any


def _warm(modules: list[str], hold_s: float) -> dict[str, Any]:
    import ray

    for module in modules:
        importlib.import_module(module)
    time.sleep(hold_s)  # every task holds its CPU for a moment, so that each gets a process of its own
    return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}


def warm_workers(nodes: list[dict[str, Any]], modules: list[str], hold_s: float = 0.2) -> dict[str, Any]:
    """One task per CPU of every alive node, each importing ``modules``; what ran, for the Result."""
    import ray

    cpus = sum(int(node["resources"].get("CPU", 0)) for node in nodes)
    started = time.time()
    task = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(_warm)
    ran = ray.get([task.remote(modules, hold_s) for _ in range(cpus)])
    return {"tasks": len(ran), "processes": len({(r["node"], r["pid"]) for r in ran}), "imports": modules,
            "seconds": time.time() - started}
