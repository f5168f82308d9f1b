"""Ray's hand-off to a do-nothing actor (as actor_cap.py, one actor): blocks as they come vs
re-cut into whole batches by repartition(target_num_rows_per_block=B, strict=True), an operator
of its own; F-T-T-F.

    .venv/bin/python docs/experiments/2026-11-30/whole_batches_handoff.py 4096 256 128
"""
import sys, time
import numpy as np, ray
from bench import datasets
from bench.cluster import Placement
from bench.pipeline import data_context, read_shards
from bench.stages import preprocess_for, variant

class Null:
    def __call__(self, batch):
        int(batch["image"][:, 0, 0, 0].sum())
        return {"id": batch["id"], "n": np.full(len(batch["id"]), len(batch["id"]))}

ray.init(num_cpus=4)
d = datasets.synthetic(int(sys.argv[1]), show_progress=False)
batch, mib = int(sys.argv[2]), int(sys.argv[3])
with data_context(mib):
    crops = read_shards(d.shard_files, None, Placement(1, 0, 0.5, "cpu")).map_batches(
        preprocess_for(variant("fast"), "raw"), batch_format="numpy", batch_size=None).materialize()
    crops = crops.union(*[crops] * 29)
    for exact in [False, True, True, False]:
        ds = crops.repartition(target_num_rows_per_block=batch, strict=True) if exact else crops
        ds = ds.map_batches(Null, batch_size=batch, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=1, max_concurrent_calls_per_actor=2, enable_true_multi_threading=True),
                            num_cpus=0.5)
        t = time.perf_counter(); rows = 0; first = None
        for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
            first = first or time.perf_counter(); rows += len(b["id"])
        end = time.perf_counter()
        print(f"exact={exact}: {rows} images in {end-t:.2f} s = {rows/(end-t):.0f} img/s (after first batch {rows/(end-first):.0f})", flush=True)
