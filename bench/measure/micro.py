"""`bench micro`: the reference microbenchmark (read, materialize, map that sleeps 1 s per
partition), with the ideal time for its partitions and parallelism, so overhead is a number,
not a feel. Ray runs it here; the peers (bench.peers) run the same steps on the same partitions."""

from __future__ import annotations

import math
import time
from typing import Any

import pyarrow.parquet as pq

from data_prep.common.shard_format import COLUMNS


def row_groups(files: list[str], filesystem=None) -> int:
    """The dataset's parquet row groups: the engines' common partition count, as every reader
    can split a dataset at them."""
    return sum(pq.ParquetFile(f, filesystem=filesystem).metadata.num_row_groups for f in files)


def figures(engine: str, version: str, partitions: int, parallelism: int, measured_s: float) -> dict[str, Any]:
    """One engine's result: ideal is a second per round of ``parallelism`` partitions at once."""
    ideal = math.ceil(partitions / parallelism) * 1.0
    return {"engine": engine, "version": version, "partitions": partitions, "parallelism": parallelism,
            "measured_s": measured_s, "ideal_s": ideal, "overhead_s": measured_s - ideal}


def _sleep_one_second(batch):
    time.sleep(1)
    return batch


def run(files: list[str], filesystem=None, partitions: int | None = None) -> dict[str, Any]:
    import ray

    partitions = partitions or row_groups(files, filesystem)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ds = ray.data.read_parquet(files, filesystem=filesystem).select_columns(COLUMNS).repartition(partitions)
    ds = ds.materialize()
    parallelism = int(ray.cluster_resources().get("CPU", 1))
    start = time.perf_counter()
    ds.map_batches(_sleep_one_second, batch_size=None).materialize()
    measured = time.perf_counter() - start
    return figures("ray", ray.__version__, ds.num_blocks(), parallelism, measured)
