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


A, B, C = ("a" * 56, "b" * 56, "c" * 56)  # Ray checks that a node id is 28 bytes of hex


def test_a_cpu_only_cluster_gets_one_actor_per_node_each_preferring_its_own():
    placed = place(RunConfig(), [node(A, 64), node(B, 64), node(C, 64)])
    assert (placed.actors, placed.actor_num_gpus, placed.actor_nodes) == (3, 0.0, [A, B, C])
    pick = placed.actor_remote_args()
    chosen = [pick()["scheduling_strategy"] for _ in range(4)]
    assert [s.node_id for s in chosen] == [A, B, C, A] and all(s.soft for s in chosen)
    one = place(RunConfig(), [node("a", 64)])  # one node: one actor, anywhere
    assert (one.actors, one.actor_nodes, one.actor_remote_args()) == (1, [], None)
    small = place(RunConfig(), [node("a", 1), node("b", 1)])  # two CPUs: one actor, one CPU left for reads
    assert small.actors == 1
    with_gpus = place(RunConfig(), [node("g", 16, 1), node("c", 64), node("d", 64)])  # GPUs: as before
    assert (with_gpus.actors, with_gpus.actor_nodes) == (1, [])
