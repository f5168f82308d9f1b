"""Before the timer: start the cluster's worker processes, as Ray's own multimodal benchmarks do
("to ensure benchmarks compare data processing speed and not cluster startup overhead"), with
what the read and preprocessing tasks import loaded (Variant.warm_modules), so that those tasks
start in warm processes; and Ray Data's own cluster-wide helper actors (start_ray_data_helpers).
The reference variant keeps the reference's cold start (Variant.reference_start)."""

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
    """One task per CPU of every alive node, each importing ``modules``, then Ray Data's helpers
    started; what ran, for the Result."""
    import ray

    cpus = sum(int(node["resources"].get("CPU", 0)) for node in nodes)
    started = time.time()
    task = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(_warm)
    ran = ray.get([task.remote(modules, hold_s) for _ in range(cpus)])
    return {"tasks": len(ran), "processes": len({(r["node"], r["pid"]) for r in ran}), "imports": modules,
            "ray_data_helpers": start_ray_data_helpers(), "seconds": time.time() - started}


class WarmUp:
    """The warm-up's stand-in for a model actor; Ray names it in its one line about the actors'
    constructor arguments (README)."""

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return batch


def start_ray_data_helpers() -> list[str]:
    """Ray Data's cluster-wide helpers (its stats actor, actor location tracker, autoscaling
    coordinator and, where usage stats are on, usage recorder) started by a one-row dataset
    through a one-actor pool; the names of the actors it started (none on a cluster that ran a
    dataset before). They are detached actors, each a worker process that imports ray.data: left
    to the run, they start in its first second, on the cores where the model actor and the file
    listing start, and only a cluster's first run pays for them."""
    import ray

    def named() -> set[tuple[str, str]]:
        return {(actor["namespace"], actor["name"]) for actor in ray.util.list_named_actors(all_namespaces=True)}

    before = named()
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.range(1, override_num_blocks=1).map_batches(WarmUp, compute=ray.data.ActorPoolStrategy(size=1),
                                                         num_cpus=0).take_all()
    return sorted(name for _, name in named() - before)
