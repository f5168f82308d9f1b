"""Where each stage runs, decided from the Ray cluster's resources.

One model actor per GPU when the cluster has GPUs (on any node). Without GPUs, one CPU actor per
node, each on its own node and using that node's cores (one node: one actor).
Asked for more model actors than GPUs, they share them: each gets 1/k of a GPU, k actors per GPU,
so that the host's per-batch work (Ray's batching, copies) runs in several processes per GPU.
In a mixed cluster the CPU-only nodes do the reads and the preprocessing, selected through
Ray's default ``ray.io/node-id`` label, so GPU nodes keep their CPUs for feeding their GPUs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.config import RunConfig
from bench.errors import BenchError


@dataclass(frozen=True)
class Placement:
    actors: int
    actor_num_gpus: float
    actor_num_cpus: float
    device: str  # what the actors will ask torch for: "cuda", "cpu" or "auto"
    preprocess_nodes: list[str] = field(default_factory=list)  # empty: anywhere
    actor_nodes: list[str] = field(default_factory=list)  # the i-th actor's preferred node, in turn; empty: anywhere
    nodes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """The kind of device the model actors run on: "cuda" or "cpu"."""
        return "cuda" if self.actor_num_gpus else "cpu"

    def preprocess_label_selector(self) -> dict[str, str] | None:
        if not self.preprocess_nodes:
            return None
        return {"ray.io/node-id": f"in({','.join(self.preprocess_nodes)})"}

    def actor_remote_args(self):
        """Ray Data's ``ray_remote_args_fn`` for the model actors: each new actor prefers the next
        of ``actor_nodes`` (soft: an actor restarted after its node is lost goes elsewhere)."""
        if not self.actor_nodes:
            return None
        import itertools

        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        turn = itertools.cycle(self.actor_nodes)
        return lambda: {"scheduling_strategy": NodeAffinitySchedulingStrategy(next(turn), soft=True)}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def place(config: RunConfig, nodes: list[dict[str, Any]]) -> Placement:
    gpu_nodes = [n for n in nodes if n["resources"].get("GPU", 0) > 0]
    cpu_nodes = [n for n in nodes if n["resources"].get("GPU", 0) == 0 and n["resources"].get("CPU", 0) > 0]
    total_gpus = int(total(gpu_nodes, "GPU"))
    if config.device == "cuda" and total_gpus == 0:
        raise BenchError("--device cuda was asked for, but the Ray cluster has no GPUs; "
                         "use --device cpu (or auto) to run on CPUs")
    use_gpus = total_gpus > 0 and config.device != "cpu"
    if use_gpus:
        actors = config.actors or total_gpus
        if not cpu_nodes:  # the reads share the GPU nodes' CPUs with the model actors
            leave_cpus_for_reads(actors, total(gpu_nodes, "CPU"))
        return Placement(actors, gpu_share(actors, total_gpus), 1.0, "auto" if config.device == "auto" else config.device,
                         [n["node_id"] for n in cpu_nodes] if cpu_nodes else [], nodes=nodes)
    with_cpus = [n for n in nodes if n["resources"].get("CPU", 0) > 0]  # --device cpu: GPU nodes' too
    cpus = total(with_cpus, "CPU")
    actors = config.actors or max(1, min(len(with_cpus), int(cpus) - 1))
    leave_cpus_for_reads(actors, cpus)
    spread = [n["node_id"] for n in with_cpus] if len(with_cpus) > 1 else []
    return Placement(actors, 0.0, 1.0, "cpu", [], actor_nodes=spread, nodes=nodes)


def total(nodes: list[dict[str, Any]], resource: str) -> float:
    """How much of a Ray resource ("CPU", "GPU") the ``nodes`` have together."""
    return sum(n["resources"].get(resource, 0) for n in nodes)


def leave_cpus_for_reads(actors: int, cpus: float) -> None:
    """Each model actor reserves a CPU, and so does each of Ray's read tasks: actors holding
    every CPU where the shards are read would leave the run waiting for reads that never start
    until --stall-timeout (seen with 2 CPU actors on 2 cores), so refuse at once."""
    if actors < cpus:
        return
    fix = (f"use --actors {int(cpus) - 1} or fewer" if cpus >= 2
           else "give the Ray cluster at least 2 CPUs")
    raise BenchError(f"{actors} model actor(s) would hold all {cpus:g} CPU(s) where the shards are read "
                     f"(each reserves one), leaving none for the reads: {fix}")


def gpu_share(actors: int, gpus: int) -> float:
    """Each model actor's share of a GPU: a whole one while there are enough, else 1/k with k =
    actors per GPU rounded up, a share that packs (1/k of one GPU k times; 2/3 would fit once)."""
    if actors <= gpus:
        return 1.0
    return 1.0 / math.ceil(actors / gpus)
