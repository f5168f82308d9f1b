"""How many images per second can Ray Data hand one model actor that does nothing? Crops made and
materialized first (no reads competing), then the actor stage alone over them, as wired by
bench.pipeline.predict: batches of 256, two threaded calls; 1 actor vs 2 actors, A-B-A-B. The crops of
the N synthetic images are repeated 30 times (object references reused).

    .venv/bin/python docs/experiments/2026-11-30/actor_cap.py 4096
"""
import sys, time
import numpy as np, ray
from bench import datasets
from bench.cluster import Placement
from bench.config import RunConfig
from bench.pipeline import data_context, read_shards
from bench.stages import preprocess_for, variant

class Null:
    def __init__(self):
        self.t0 = time.process_time()
    def __call__(self, batch):
        int(batch["image"][:, 0, 0, 0].sum())
        return {"id": batch["id"], "cpu": np.full(len(batch["id"]), time.process_time() - self.t0)}

ray.init(num_cpus=4)
d = datasets.synthetic(int(sys.argv[1]), show_progress=False)
config = RunConfig(batch_size=256, max_concurrency=2, threaded_actors=True)
with data_context(128):
    crops = read_shards(d.shard_files, None, Placement(1, 0, 0.5, "cpu")).map_batches(
        preprocess_for(variant("fast"), "raw"), batch_format="numpy", batch_size=None).materialize()
    crops = crops.union(*[crops] * 29)
    for actors in [1, 2, 1, 2]:
        ds = crops.map_batches(Null, batch_size=256, batch_format="numpy",
                               compute=ray.data.ActorPoolStrategy(size=actors, max_concurrent_calls_per_actor=2, enable_true_multi_threading=True),
                               num_cpus=0.5)
        t = time.perf_counter(); rows = 0
        first = None
        for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
            first = first or time.perf_counter(); rows += len(b["id"])
        end = time.perf_counter()
        print(f"{actors} actor(s): {rows} images in {end-t:.2f} s = {rows/(end-t):.0f} img/s (after first batch {rows/(end-first):.0f})", flush=True)
