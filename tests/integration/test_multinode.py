"""A mixed Ray cluster on one machine: the model goes to the GPU node, preprocessing to the
CPU-only node, exactly as on a g4dn + m5 cluster."""

from __future__ import annotations

import json

import pytest
from bench.config import RunConfig
from bench.results import bundle
from bench.run import runner

MB = 1 << 20


@pytest.fixture(scope="module")
def mixed_cluster():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 200 * MB})
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1, object_store_memory=200 * MB)  # declares a GPU
    cpu_node = cluster.add_node(num_cpus=2, object_store_memory=200 * MB)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield {"gpu": gpu_node.node_id, "cpu": cpu_node.node_id}
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.parametrize("fmt", ["raw", "jpeg"])
def test_stages_land_on_the_right_nodes(mixed_cluster, tmp_path, fmt):
    from helpers import run_cli

    data = tmp_path / "data"
    run_cli("data-prep", "synth", "--images", "16", "--rows-per-shard", "4", "--format", fmt, "--out", str(data), "-q",
            check=True)
    path = runner.run(None, str(data), RunConfig(batch_size=4), None, tmp_path / "bundle", show_progress=False)
    result = json.loads((path / bundle.RESULT).read_text())
    assert result["placement"]["actors"] == 1 and result["placement"]["actor_num_gpus"] == 1.0
    assert result["placement"]["preprocess_nodes"] == [mixed_cluster["cpu"]]
    assert result["images_per_node"]["model_node"] == {mixed_cluster["gpu"]: 16}
    assert result["images_per_node"]["preprocess_node"] == {mixed_cluster["cpu"]: 16}
    # Reads run where preprocessing does. A crop is fused into the read tasks, so only crops travel
    # to the model; JPEG decoding keeps tasks of its own, to use more cores than there are reads.
    operators = [stage["operator"] for stage in result["stages"]]
    if fmt == "raw":
        assert "ReadFilesParquetV2->MapBatches(preprocess)" in operators, operators
    else:
        assert "ReadFilesParquetV2" in operators and "MapBatches(preprocess)" in operators, operators
    env = json.loads((path / bundle.ENV).read_text())
    assert len(env["nodes"]) == 3
    assert bundle.verify(path).ok
