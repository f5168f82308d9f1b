"""What Ray Data's 32 parquet footer readers cost a run that has a few files: `bench run` on a
named size or a dataset directory, in one process, alternating Ray's default pool (32
`FooterReader` actors asked for per `read_parquet`, each in a worker process of its own) with
one actor per 10 files (Ray hands each actor 10 files at a time, so the others get no work).
Prints, per run: img/s, the ListFiles operator's wall time, seconds from the start to the first
predictions, and the machine's busy core-seconds over the whole `bench run` call (calibration
and checks included). Bundles go to OUT/. Both arms set Ray's variable: left unset, the kit
(bench.pipeline.footer_readers, since this measurement) would size the pool in both.

    .venv/bin/python docs/experiments/2026-12-01/footer_actors.py OUT mini 4
"""
import json
import math
import os
import sys
import time
from pathlib import Path

import psutil

from bench import bundle, datasets, runner
from bench.config import RunConfig
from bench.pipeline import FOOTER_READERS_ENV

RAY_DEFAULT_READERS, FILES_PER_CALL = "32", 10  # Ray Data 2.60's defaults

out, size, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
size, data = (None, size) if os.path.isdir(size) else (size, None)
files = len(datasets.resolve(size, data).shard_files)
needed = str(math.ceil(files / FILES_PER_CALL))
print(f"{size or data}: {files} files, {needed} footer reader(s) needed", flush=True)
for i in range(rounds):
    for name in (["default", "needed"] if i % 2 == 0 else ["needed", "default"]):
        os.environ[FOOTER_READERS_ENV] = needed if name == "needed" else RAY_DEFAULT_READERS
        busy0, wall0 = psutil.cpu_times(), time.perf_counter()
        path = runner.run(size, data, RunConfig(), None, out / f"{i}-{name}", show_progress=False)
        busy1, wall = psutil.cpu_times(), time.perf_counter() - wall0
        r = json.loads((path / bundle.RESULT).read_text())
        listing = sum(s["wall_s"] for s in r.get("stages") or [] if s["operator"] == "ListFiles")
        events = r["events"]
        busy = sum(busy1) - busy1.idle - busy1.iowait - (sum(busy0) - busy0.idle - busy0.iowait)  # Ray's workers run niced
        print(f"{i} {name:8s} {r['throughput_img_s']:6.1f} img/s  listing {listing:4.1f} s  "
              f"first predictions at {events['first_predictions'] - events['start']:5.1f} s  "
              f"busy {busy:6.1f} of {wall * psutil.cpu_count():6.1f} core-s  {r['predictions_sha256'][:16]}", flush=True)
