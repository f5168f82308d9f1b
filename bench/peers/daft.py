"""Daft on its native runner, on this machine. Its configuration, each for a reason:

- The map is a class UDF with ``max_concurrency`` set to the cores this process may use: the
  stateful form Daft documents for models, and one instance per core, as Ray has a task per CPU.
- Daft's default of a worker process per instance: the images cross to it, as they cross to
  Ray's and Spark's Python workers.
- The native runner cannot repartition (``into_partitions`` is a no-op there), so the data is cut
  into batches of ceil(rows / partitions) rows (``into_batches``); Daft still cuts at its own
  morsel edges, so the calls it made are counted and the ideal time is theirs.
"""

from __future__ import annotations

import importlib.util
import math
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.measure.micro import figures
from bench.peers import missing
from data_prep.common.cores import usable_cores
from data_prep.common.shard_format import COLUMNS


def check_installed() -> None:
    if importlib.util.find_spec("daft") is None:
        raise missing("daft")


def version() -> str:
    import daft

    return daft.__version__


def micro(files: list[str], partitions: int) -> dict[str, Any]:
    """The reference microbenchmark on Daft: read and collect, then time a map that sleeps 1 s per
    batch of a ``partitions``-th of the rows and returns its input."""
    import daft

    parallelism = usable_cores()
    df = daft.read_parquet(files).select(*COLUMNS).collect()
    rows = len(df)

    @daft.cls(max_concurrency=parallelism)
    class SleepOneSecond:
        def __init__(self, calls: str):
            self.calls = Path(calls)

        @daft.method.batch(return_dtype=df.schema()["image"].dtype)
        def __call__(self, image):
            time.sleep(1)
            (self.calls / uuid.uuid4().hex).write_text(str(len(image)))  # the UDF runs in Daft's processes
            return image

    with tempfile.TemporaryDirectory(prefix="raybench-daft-") as calls:
        start = time.perf_counter()
        df.into_batches(math.ceil(rows / partitions)).with_column("image", SleepOneSecond(calls)(df["image"])).collect()
        measured = time.perf_counter() - start
        made = [int(path.read_text()) for path in Path(calls).iterdir()]
    if sum(made) != rows:
        raise BenchError(f"daft's map returned {sum(made)} of {rows} rows: a lost batch, so no figure")
    return figures("daft", version(), len(made), parallelism, measured)
