"""`bench micro`: the reference microbenchmark (read, materialize, map that sleeps 1 s/batch),
with the ideal time for its block count and parallelism, so overhead is a number, not a feel."""

from __future__ import annotations

import math
import time
from typing import Any

from data_prep.common.shard_format import COLUMNS


def _sleep_one_second(batch):
    time.sleep(1)
    return batch


def run(files: list[str], filesystem=None) -> dict[str, Any]:
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    ds = ray.data.read_parquet(files, filesystem=filesystem).select_columns(COLUMNS).materialize()
    blocks = ds.num_blocks()
    parallelism = int(ray.cluster_resources().get("CPU", 1))
    start = time.perf_counter()
    ds.map_batches(_sleep_one_second, batch_size=None).materialize()
    measured = time.perf_counter() - start
    ideal = math.ceil(blocks / parallelism) * 1.0
    return {"blocks": blocks, "parallelism": parallelism, "measured_s": measured,
            "ideal_s": ideal, "overhead_s": measured - ideal}
