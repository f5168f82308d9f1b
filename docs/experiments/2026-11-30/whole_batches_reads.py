"""Reads, crops and the hand-off to a do-nothing actor (batches of B, reads of MIB MiB blocks):
three wirings, in the order given (any extra argument prints Ray Data's stats).
  now:       crop fused into the read tasks (whole blocks), actor bundles blocks as they come
  separate:  now + repartition(B, strict) as an operator of its own
  fused:     crop in batches of B + repartition(B, strict), which Ray fuses with the read: its
             input bundler then counts the file listing's rows, and one task reads everything

    .venv/bin/python docs/experiments/2026-11-30/whole_batches_reads.py 4096 256 128 now,separate,fused,now,separate,fused
    .venv/bin/python docs/experiments/2026-11-30/whole_batches_reads.py 4096 16 16 now,fused,now,fused
    .venv/bin/python docs/experiments/2026-11-30/whole_batches_reads.py 4096 256 128 fused stats
"""
import collections, sys, time
import numpy as np, ray
from bench import datasets
from bench.cluster import Placement
from bench.pipeline import data_context, read_shards
from bench.stages import preprocess_for, variant

class Null:
    def __call__(self, batch):
        int(batch["image"][:, 0, 0, 0].sum())
        return {"id": batch["id"], "n": np.full(len(batch["id"]), len(batch["id"])), "first": np.array([batch["id"][0]] * len(batch["id"]))}

ray.init(num_cpus=2)
d = datasets.synthetic(int(sys.argv[1]), show_progress=False)
B, mib = int(sys.argv[2]), int(sys.argv[3])
crop = preprocess_for(variant("fast"), "raw")
for wiring in sys.argv[4].split(","):
    with data_context(mib):
        ds = read_shards(d.shard_files, None, Placement(1, 0, 0.5, "cpu"))
        if wiring == "fused":
            ds = ds.map_batches(crop, batch_format="numpy", batch_size=B).repartition(target_num_rows_per_block=B, strict=True)
        else:
            ds = ds.map_batches(crop, batch_format="numpy", batch_size=None)
            if wiring == "separate":
                ds = ds.repartition(target_num_rows_per_block=B, strict=True)
        ds = ds.map_batches(Null, batch_size=B, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=1, max_concurrent_calls_per_actor=2, enable_true_multi_threading=True),
                            num_cpus=0.5)
        t = time.perf_counter(); rows = 0; batches = set()
        for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
            rows += len(b["id"]); batches |= set(zip(b["first"].tolist(), b["n"].tolist()))
        s = time.perf_counter() - t
    sizes = collections.Counter(n for _, n in batches)
    ops = " -> ".join(line.split("Operator ")[1].split(":")[0].split(" ", 1)[1] for line in ds.stats().splitlines() if line.startswith("Operator "))
    if len(sys.argv) > 5: print(ds.stats())
    print(f"{wiring:8s}: {rows} images {s:.1f} s = {rows/s:.0f} img/s, {len(batches)} batches {dict(sorted(sizes.items()))} | {ops}", flush=True)
