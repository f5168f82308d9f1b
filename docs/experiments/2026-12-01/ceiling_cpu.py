"""The model-only ceiling as `bench perf` takes it (bench.perf.ceiling: the default config's
Predictor, int8 calibrated as in `bench run`, two calls at once on a CPU), with the CPU time
this process spent per image, to set beside a model actor's CPU per image in a run
(cpu_by_process.py).

    python ceiling_cpu.py DATA_DIR [ROUNDS]
"""

from __future__ import annotations

import sys
import time

import psutil

from bench import datasets, precision
from bench.config import RunConfig
from bench.perf import PREPROCESS_SAMPLE, ceiling


def main() -> None:
    dataset = datasets.resolve(None, sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    config = RunConfig(device="cpu").for_device("cpu")
    sample = precision.sample_batch(dataset.shard_files, dataset.filesystem, PREPROCESS_SAMPLE)
    measure = ceiling(config, dataset, sample, 5.0)
    me = psutil.Process()
    for _ in range(rounds):
        cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
        img_s = measure()
        cpu, wall = sum(me.cpu_times()[:2]) - cpu0, time.perf_counter() - t0
        print(f"{config.precision} batch {config.batch_size} x{config.model_calls_at_once}: {img_s:.1f} img/s, "
              f"{cpu / wall:.2f} cores busy, {1000 * cpu / (img_s * wall):.1f} ms of CPU per image (approx.)")


if __name__ == "__main__":
    main()
