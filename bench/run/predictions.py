"""What every launcher writes and times the same way: predictions.parquet, filled as batches
arrive (the reference consumed them with ``iter_batches`` likewise), a progress bar, a loud
failure when they stop arriving, and the run's wall-clock marks."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

from bench.errors import BenchError
from bench.stages.startup import COLUMN as STARTUP_COLUMN
from bench.stages.startup import Lane, lanes_in
from data_prep.common.progress import progress_bar

PREDICTION_FIELDS = [
    ("id", pa.string()),
    ("label", pa.int32()),
    ("top1", pa.int32()),
    ("top5", pa.list_(pa.int32(), 5)),
    ("top5_prob", pa.list_(pa.float32(), 5)),
    ("preprocess_node", pa.string()),
    ("model_node", pa.string()),
]


def prediction_schema(save_logits: bool) -> pa.Schema:
    fields = list(PREDICTION_FIELDS)
    if save_logits:
        fields.append(("logits", pa.list_(pa.float32(), 1000)))
    return pa.schema(fields)


@dataclass
class Timings:
    """Wall-clock marks of one run (perf_counter seconds), from before the first read.
    ``metadata_s`` is the reference's "metadata fetch": the read call, plus, on Ray, Ray Data's
    file-listing operator (since Ray 2.5x listing and footer reads happen inside execution, no
    longer eagerly in ``read_parquet`` as when the reference was measured)."""

    start: float
    after_read_call: float
    end: float
    images: int
    stages: list[dict[str, Any]] | None = None  # per-operator wall times
    events: dict[str, float] | None = None  # wall-clock (time.time()) marks, for telemetry plots
    lanes: list[dict[str, Any]] | None = None  # start-up, the driver's then each model stage's (bench.stages.startup)
    first_rows: int = 0  # images in the first predictions

    @property
    def listing_s(self) -> float:
        return sum(stage["wall_s"] for stage in self.stages or [] if stage["operator"] == "ListFiles")

    @property
    def total_s(self) -> float:
        return self.end - self.start

    @property
    def metadata_s(self) -> float:
        return (self.after_read_call - self.start) + self.listing_s

    @property
    def excl_metadata_s(self) -> float:
        return self.total_s - self.metadata_s


class Stopwatch:
    """The run's marks, taken where the launcher reaches them: ``start`` before the first read,
    ``read_called`` once the read is set up, then ``finish``; events carry the wall clock."""

    def __init__(self, driver: Lane | None = None) -> None:
        self.driver = driver or Lane("driver")
        self.events = {"start": time.time()}
        self.driver.mark("timer started", self.events["start"])
        self.start = time.perf_counter()
        self.after_read_call = self.start
        self.lanes: list[dict[str, Any]] = []  # the model stages', as their first batches bring them
        self.first_rows = 0  # images in the first predictions

    def read_called(self) -> None:
        self.after_read_call = time.perf_counter()
        self.driver.mark("dataset planned")

    def first_predictions(self, rows: int) -> None:
        if "first_predictions" not in self.events:
            self.first_rows = rows
            self.events["first_predictions"] = time.time()
            self.driver.mark("first predictions", self.events["first_predictions"])

    def finish(self, images: int, stages: list[dict[str, Any]] | None = None) -> Timings:
        end = time.perf_counter()
        self.events["end"] = time.time()
        return Timings(self.start, self.after_read_call, end, images, stages, self.events,
                       [self.driver.as_dict(), *self.lanes], self.first_rows)


def write_predictions(batches: Iterable[pa.Table], path: Path, save_logits: bool, expected_images: int,
                      stopwatch: Stopwatch, stall_timeout_s: float, show_progress: bool) -> int:
    """Write ``batches`` (pyarrow tables of the Predictor's columns) to ``path`` as they arrive,
    with a progress bar; returns how many images were written."""
    schema = prediction_schema(save_logits)
    images = 0
    columns = [TextColumn("inference"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[rate]}")]
    with progress_bar(*columns, show=show_progress) as progress, pq.ParquetWriter(path, schema) as writer:
        task = progress.add_task("images", total=expected_images, rate="")
        for batch in within_stall_limit(batches, stall_timeout_s):
            stopwatch.first_predictions(batch.num_rows)
            if STARTUP_COLUMN in batch.column_names:
                stopwatch.lanes += lanes_in(batch.column(STARTUP_COLUMN).to_pylist())
            writer.write_table(batch.select(schema.names).cast(schema))
            images += batch.num_rows
            rate = images / (time.perf_counter() - stopwatch.start)
            progress.update(task, completed=images, rate=f"{rate:,.1f} img/s")
    return images


_DONE = object()


def within_stall_limit(batches: Iterable[Any], seconds: float) -> Iterator[Any]:
    """``batches``, or a loud failure when none arrives for ``seconds``: a cluster that lost the
    only node able to run a stage (its GPU worker, say) makes Ray wait for resources forever."""
    handoff: queue.Queue = queue.Queue(maxsize=8)

    def pump() -> None:
        try:
            for batch in batches:
                handoff.put(batch)
            handoff.put(_DONE)
        except BaseException as exc:  # re-raised in the caller's thread
            handoff.put(exc)

    threading.Thread(target=pump, name="predictions", daemon=True).start()
    while True:
        try:
            item = handoff.get(timeout=seconds)
        except queue.Empty:
            raise BenchError(f"no predictions arrived for {seconds:.0f} s: the cluster may have lost a node or GPU "
                             f"that a stage needs (see `ray status`); no bundle was written. Raise --stall-timeout "
                             f"if a first batch can legitimately take longer") from None
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
