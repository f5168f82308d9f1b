"""Where the model actors go (bench.run.cluster.place), from the Ray cluster's resources."""

from __future__ import annotations

import pytest

from bench.run.cluster import gpu_share, place
from bench.config import RunConfig
from bench.errors import BenchError


def node(name: str, cpus: int, gpus: int = 0) -> dict:
    resources = {"CPU": float(cpus), **({"GPU": float(gpus)} if gpus else {})}
    return {"node_id": name, "address": "127.0.0.1", "manager_port": 0, "resources": resources}


@pytest.mark.parametrize("actors, gpus, share", [(1, 1, 1.0), (2, 4, 1.0), (4, 4, 1.0), (2, 1, 0.5), (3, 1, 1 / 3),
                                                 (3, 2, 0.5), (5, 4, 0.5), (8, 4, 0.5)])
def test_actors_beyond_the_gpus_share_them_in_shares_that_pack(actors, gpus, share):
    assert gpu_share(actors, gpus) == share
    assert int(1 / share) * gpus >= actors  # every actor fits


def test_one_whole_gpu_per_actor_by_default_and_shared_when_more_are_asked_for():
    nodes = [node("g", 16, 1), node("c", 64)]
    default = place(RunConfig(), nodes)
    assert (default.actors, default.actor_num_gpus, default.preprocess_nodes) == (1, 1.0, ["c"])
    two = place(RunConfig(actors=2), nodes)
    assert (two.actors, two.actor_num_gpus) == (2, 0.5)


def test_cpu_clusters_get_cpu_actors_and_cuda_without_gpus_is_refused():
    cpu = place(RunConfig(actors=2), [node("c", 4)])
    assert (cpu.actors, cpu.actor_num_gpus, cpu.device) == (2, 0.0, "cpu")
    on_a_gpu_node = place(RunConfig(device="cpu"), [node("g", 16, 1)])  # the CPU actor and reads use its CPUs
    assert (on_a_gpu_node.actors, on_a_gpu_node.actor_num_gpus, on_a_gpu_node.device) == (1, 0.0, "cpu")
    with pytest.raises(BenchError, match="has no GPUs"):
        place(RunConfig(device="cuda"), [node("c", 2)])


@pytest.mark.parametrize("nodes, config, fix", [
    ([node("c", 2)], RunConfig(actors=2), "use --actors 1 or fewer"),
    ([node("c", 1)], RunConfig(), "give the Ray cluster at least 2 CPUs"),
    ([node("g", 2, 1)], RunConfig(actors=2), "use --actors 1 or fewer"),
])
def test_model_actors_may_not_take_every_cpu_the_reads_need(nodes, config, fix):
    # Each actor reserves a CPU; with none left, Ray's read tasks never start and the run would
    # wait for its stall timeout.
    with pytest.raises(BenchError, match="leaving none for the reads") as refused:
        place(config, nodes)
    assert fix in str(refused.value)


def test_reads_on_cpu_only_nodes_leave_the_gpu_nodes_cpus_to_the_actors():
    placed = place(RunConfig(actors=2), [node("g", 4, 1), node("c", 2)])
    assert (placed.actors, placed.actor_num_gpus, placed.preprocess_nodes) == (2, 0.5, ["c"])
