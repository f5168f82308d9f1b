"""Where each stage runs, decided from the Ray cluster's resources.

One model actor per GPU when the cluster has GPUs (on any node), one CPU actor when it has none.
In a mixed cluster the CPU-only nodes do the reads and the preprocessing, selected through
Ray's default ``ray.io/node-id`` label, so GPU nodes keep their CPUs for feeding their GPUs.
"""

from __future__ import annotations

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
    nodes: list[dict[str, Any]] = field(default_factory=list)

    def preprocess_label_selector(self) -> dict[str, str] | None:
        if not self.preprocess_nodes:
            return None
        return {"ray.io/node-id": f"in({','.join(self.preprocess_nodes)})"}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def alive_nodes() -> list[dict[str, Any]]:
    import ray

    return [
        {"node_id": n["NodeID"], "address": n.get("NodeManagerAddress"), "manager_port": n.get("NodeManagerPort"),
         "resources": n.get("Resources", {})}
        for n in ray.nodes()
        if n.get("Alive")
    ]


def place(config: RunConfig, nodes: list[dict[str, Any]]) -> Placement:
    gpu_nodes = [n for n in nodes if n["resources"].get("GPU", 0) > 0]
    cpu_nodes = [n for n in nodes if n["resources"].get("GPU", 0) == 0 and n["resources"].get("CPU", 0) > 0]
    total_gpus = int(sum(n["resources"].get("GPU", 0) for n in gpu_nodes))
    if config.device == "cuda" and total_gpus == 0:
        raise BenchError("--device cuda was asked for, but the Ray cluster has no GPUs; "
                         "use --device cpu (or auto) to run on CPUs")
    use_gpus = total_gpus > 0 and config.device != "cpu"
    if use_gpus:
        actors = config.concurrency or total_gpus
        return Placement(actors, 1.0, 1.0, "auto" if config.device == "auto" else config.device,
                         [n["node_id"] for n in cpu_nodes] if cpu_nodes else [], nodes)
    return Placement(config.concurrency or 1, 0.0, 1.0, "cpu", [], nodes)
