"""Does the model stage make the same batches in every run? Wired like a GPU run (crops in the
read tasks, 128 MiB blocks, one actor taking batches of 256) with a recorder in place of the
model, three runs with blocks in order (bench.pipeline.data_context) and three as they finish.

    .venv/bin/python docs/experiments/2026-11-30/batches.py 4096
"""
import hashlib
import json
import sys
import time

import numpy as np
import ray

from bench import datasets
from bench.cluster import Placement
from bench.config import RunConfig
from bench.pipeline import data_context, predict, read_shards
from bench.stages import preprocess_for, variant


class Recorder:
    def __call__(self, batch):
        ids = batch["id"]
        return {"first": np.array([ids[0]] * len(ids)), "n": np.full(len(ids), len(ids)), "id": ids}


def once(dataset, ordered: bool):
    placement = Placement(actors=1, actor_num_gpus=0, actor_num_cpus=0.5, device="cpu")
    config = RunConfig(batch_size=256, max_concurrency=2, threaded_actors=True)
    with data_context(128):
        ray.data.DataContext.get_current().execution_options.preserve_order = ordered
        ds = predict(read_shards(dataset.shard_files, None, placement), preprocess_for(variant("fast"), "raw"),
                     Recorder, {}, config, placement)
        start = time.perf_counter()
        rows = ds.take_all()
        seconds = time.perf_counter() - start
    batches = sorted({(r["first"], int(r["n"])) for r in rows})
    return batches, seconds, len(rows)


ray.init(num_cpus=2)
dataset = datasets.synthetic(int(sys.argv[1]), show_progress=False)
for ordered in (False, True):
    for _ in range(3):
        batches, seconds, images = once(dataset, ordered)
        digest = hashlib.sha256(json.dumps(batches).encode()).hexdigest()[:12]
        print(f"{'ordered' if ordered else 'unordered'}: {images} images in {seconds:.1f} s, {len(batches)} batches "
              f"of {min(b[1] for b in batches)}-{max(b[1] for b in batches)}, batches {digest}", flush=True)
