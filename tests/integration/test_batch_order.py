"""The model's batches hold the same images in every run, whatever order the reads finish in.

A GPU's kernels depend on the batch's size, so an image's fp16 logits can change with the
batch it lands in; the pipeline keeps Ray Data's blocks in order (bench.run.pipeline.data_context)
so that batches do not depend on timing. Here a recorder stands in for the model (the
question is which images share a batch, not what it computes), and one run's first shard is
read slowly, so that unordered, its block would reach the actors last.
"""

from __future__ import annotations

import sys
import time
from functools import partial

import numpy as np
import pyarrow.parquet as pq
import pytest
from bench.config import RunConfig
from bench.run.cluster import Placement
from bench.run.pipeline import data_context, predict, read_shards
from bench.variants import variant

SHARDS, ROWS_PER_SHARD, BATCH = 6, 5, 8  # 5-image blocks: most batches take images of two shards


@pytest.fixture(scope="module")
def ray_four_cpus():
    """Four logical CPUs, so that reads run side by side and can finish out of order."""
    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    yield ray
    ray.shutdown()


class BatchRecorder:
    """Each image's batch, named by the batch's first image."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"id": batch["id"], "batch": np.full(len(batch["id"]), batch["id"][0], dtype=object)}


def read_late(preprocess, late_id: str | None, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if late_id in batch["id"]:
        time.sleep(4)
    return preprocess(batch)


def batches(data, late_id: str | None, whole_batches: bool = False, read_block_mib: int | None = None) -> dict[str, str]:
    """{image id: its batch} of one run through the pipeline's own wiring and context."""
    files = sorted(str(p) for p in data.glob("shards/*.parquet"))
    config = RunConfig(batch_size=BATCH, calls_per_actor=2, threaded_actors=True, whole_batches=whole_batches)
    placement = Placement(actors=1, actor_num_gpus=0, actor_num_cpus=0.5, device="cpu")
    preprocess = partial(read_late, variant("fast").preprocess_for("raw"), late_id)
    with data_context(read_block_mib):
        ds = predict(read_shards(files, None, placement), preprocess, BatchRecorder, {}, config, placement)
        rows = ds.take_all()
    return {row["id"]: row["batch"] for row in rows}


def test_batches_hold_the_same_images_when_the_first_shard_is_read_last(ray_four_cpus, tmp_path):
    from helpers import synth_dataset

    data = synth_dataset(tmp_path / "data", SHARDS * ROWS_PER_SHARD, ROWS_PER_SHARD)
    first_shard = sorted(data.glob("shards/*.parquet"))[0]
    first_id = pq.read_table(first_shard, columns=["id"]).column("id")[0].as_py()

    on_time, late = batches(data, None), batches(data, first_id)

    assert len(on_time) == SHARDS * ROWS_PER_SHARD  # every image once
    assert len(set(on_time.values())) < len(on_time)  # batches of several images, across shards
    assert late == on_time


def test_whole_batches_are_the_datasets_images_in_runs_of_the_batch_size(ray_four_cpus, tmp_path):
    """RunConfig.whole_batches: every batch but the last is full, and holds the next BATCH
    images in the dataset's order; without it, a bundle of blocks ends in a short batch."""
    from helpers import synth_dataset

    data = synth_dataset(tmp_path / "data", SHARDS * ROWS_PER_SHARD, ROWS_PER_SHARD)
    in_order = [row["id"] for f in sorted(data.glob("shards/*.parquet")) for row in pq.read_table(f, columns=["id"]).to_pylist()]

    def sizes(of_image: dict[str, str]) -> list[int]:
        return [list(of_image.values()).count(batch) for batch in sorted(set(of_image.values()), key=in_order.index)]

    as_blocks_come = batches(data, None, read_block_mib=1)
    assert min(sizes(as_blocks_come)[:-1]) < BATCH  # 1 MiB blocks of 5-6 images: a bundle of two makes 8 + 2-4

    whole = batches(data, in_order[0], whole_batches=True, read_block_mib=1)  # the first shard read last, too
    assert sorted(whole) == sorted(in_order)
    assert sizes(whole) == [BATCH, BATCH, BATCH, len(in_order) - 3 * BATCH]
    assert all(whole[image] == in_order[i - i % BATCH] for i, image in enumerate(in_order))


def test_a_runs_data_context_is_put_back_after_it_even_when_it_fails():
    import ray

    context = ray.data.DataContext.get_current()
    before = context.target_max_block_size, context.execution_options.preserve_order
    with pytest.raises(RuntimeError), data_context(1):
        assert context.target_max_block_size == 2**20
        assert context.execution_options.preserve_order is True
        raise RuntimeError("the run failed")
    assert (context.target_max_block_size, context.execution_options.preserve_order) == before
    with data_context(None):
        assert context.target_max_block_size == before[0]
