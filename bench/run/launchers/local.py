"""In one process, without any engine: the variant's stages fed by a prefetching loader, the
practical limit of what the stages can do on this machine, and the launcher for a GPU machine
without Ray.

Row groups are read and preprocessed by a pool of loader threads (or processes, where
preprocessing holds the GIL: Pillow opens each JPEG in Python code) that read ahead, regrouped
into model batches (on a GPU in page-locked memory) by one more thread, and given to the
variant's Predictor, which as many threads call at once as a model actor runs calls in parallel.
The timer starts before anything is built, as Ray's does before ``read_parquet``: the model is
built while the loader reads.
"""

from __future__ import annotations

import multiprocessing
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.config import RunConfig
from bench.errors import BenchError
from bench.run.cluster import Placement
from bench.run.datasets import Dataset
from bench.run.launchers.base import Launcher
from bench.run.predictions import Stopwatch, Timings, write_predictions
from bench.stages.startup import Lane
from bench.variants import variant
from data_prep.common.cores import usable_cores
from data_prep.common.shard_format import COLUMNS, table_to_batch

Batch = dict[str, np.ndarray]
Preprocess = Callable[[Batch], Batch]
LOADERS = ("auto", "threads", "processes")


class LocalLauncher(Launcher):
    """Options: ``workers`` (loader workers; default all but two of this process's cores, at
    least one), ``loader`` (threads, processes, or auto: processes where the CPU decodes JPEGs),
    ``prefetch`` (row groups read ahead, default 16)."""

    name = "local"

    def __init__(self, workers: int | None = None, loader: str = "auto", prefetch: int = 16):
        if loader not in LOADERS:
            raise BenchError(f"unknown loader {loader!r}: choose one of {', '.join(LOADERS)}")
        if (workers is not None and workers < 1) or prefetch < 1:
            raise BenchError("the local launcher needs at least one loader worker and a prefetch depth of at least 1")
        self.options = {"workers": workers or max(1, usable_cores() - 2), "loader": loader, "prefetch": prefetch}
        self._predictor = None

    def connect(self, address: str | None) -> None:
        if address:
            raise BenchError(f"--address {address}: the local launcher runs in this process, without Ray; "
                             "use --engine ray to run on a cluster")

    def nodes(self) -> list[dict[str, Any]]:
        import torch

        gpus = torch.cuda.device_count()
        resources = {"CPU": float(usable_cores()), **({"GPU": float(gpus)} if gpus else {})}
        return [{"node_id": socket.gethostname(), "address": None, "manager_port": None, "resources": resources}]

    def place(self, config: RunConfig, nodes: list[dict[str, Any]]) -> Placement:
        gpus = nodes[0]["resources"].get("GPU", 0)
        if config.device == "cuda" and not gpus:
            raise BenchError("--device cuda was asked for, but torch sees no CUDA GPU here; use --device cpu (or auto)")
        if config.actors not in (None, 1):
            raise BenchError(f"--actors {config.actors}: the local launcher runs one model, in this process")
        device = "cuda" if gpus and config.device != "cpu" else "cpu"
        return Placement(actors=1, actor_num_gpus=1.0 if device == "cuda" else 0.0,
                         actor_num_cpus=nodes[0]["resources"]["CPU"], device=device, nodes=nodes)

    def start_telemetry(self, nodes: list[dict[str, Any]], interval_s: float) -> Any:
        from bench.telemetry.collector import SamplingLoop

        loop = SamplingLoop(nodes[0]["node_id"], interval_s, gpus="GPU" in nodes[0]["resources"])
        loop.start()
        loop.sampling.wait(10)  # the first sample precedes the timed run
        return loop

    def stop_telemetry(self, handle: Any):
        return handle.stop()

    def execute(self, dataset: Dataset, config: RunConfig, placement: Placement, predictions: Path,
                weights_sha256: str, show_progress: bool, int8_state: bytes | None,
                driver: Lane) -> tuple[Timings, None]:
        chosen = variant(config.pipeline)
        fmt = dataset.manifest["format"]
        # The loader reads rows with the shard format's own reader: raw and pixel shards alike
        # come as (N,256,256,3) arrays, JPEG ones as bytes.
        preprocess = chosen.keep_encoded() if config.decode_on_device else chosen.preprocess()
        processes = self.options["loader"] == "processes" or (
            self.options["loader"] == "auto" and fmt == "jpeg" and not config.decode_on_device)
        stopwatch = Stopwatch(driver)
        with loader_pool(self.options["workers"], processes) as pool:
            batches = model_batches(dataset.shard_files, dataset.filesystem, preprocess, config.batch_size, pool,
                                    self.options["prefetch"], pin=placement.device == "cuda")
            stopwatch.read_called()
            self._predictor = chosen.predictor()(**chosen.predictor_args(config, placement.device, weights_sha256,
                                                                           int8_state))
            tables = predicted(self._predictor, batches, config.calls_in_parallel)
            images = write_predictions(tables, predictions, config.save_logits, dataset.images, stopwatch,
                                       config.stall_timeout_s, show_progress)
        return stopwatch.finish(images), None

    def accuracy_costs(self, config: RunConfig, placement: Placement, weights_sha256: str,
                       sample: dict[str, Any], int8_state: bytes | None) -> dict[str, Any]:
        from bench.stages.precision import accuracy_costs

        chosen = variant(config.pipeline)
        predictor = self._predictor or chosen.predictor()(**chosen.predictor_args(config, placement.device,
                                                                                     weights_sha256, int8_state))
        return accuracy_costs(predictor, chosen.preprocess(), sample, config.decode_on_device)


def read_row_group(path: str, filesystem, index: int) -> Batch:
    with pq.ParquetFile(path, filesystem=filesystem) as shard:
        return table_to_batch(shard.read_row_group(index, columns=COLUMNS))


def load_row_group(preprocess: Preprocess, path: str, filesystem, index: int) -> Batch:
    """One row group read and preprocessed: a loader worker's task (a module-level function, so
    that a process pool can run it)."""
    return preprocess(read_row_group(path, filesystem, index))


def loader_pool(workers: int, processes: bool) -> Executor:
    """The loader's workers, started: threads (pyarrow and numpy release the GIL while they read
    and crop), or processes, as Ray's preprocessing tasks are. Processes are spawned, not forked
    (this process may have set up CUDA), and each is started now, not in the timed run."""
    if not processes:
        return ThreadPoolExecutor(workers, thread_name_prefix="loader")
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    for started in [pool.submit(time.sleep, 0.5) for _ in range(workers)]:
        started.result()
    return pool


def prefetched(files: list[str], filesystem, preprocess: Preprocess, pool: Executor, depth: int) -> Iterator[Batch]:
    """Preprocessed row groups in order, ``depth`` of them read and preprocessed ahead by the
    ``pool``'s workers."""
    units = []
    for path in files:
        with pq.ParquetFile(path, filesystem=filesystem) as shard:
            units += [(path, index) for index in range(shard.num_row_groups)]
    pending: queue.Queue = queue.Queue()
    for path, index in units[:depth]:
        pending.put(pool.submit(load_row_group, preprocess, path, filesystem, index))
    for unit in units[depth:] + [None] * min(depth, len(units)):
        batch = pending.get().result()
        if unit is not None:
            pending.put(pool.submit(load_row_group, preprocess, unit[0], filesystem, unit[1]))
        yield batch


def rebatched(batches: Iterator[Batch], size: int, empty: Callable[..., np.ndarray] = np.empty) -> Iterator[Batch]:
    """Row groups (128 images) regrouped into model batches of ``size``, each column copied once,
    into arrays from ``empty`` (shape, dtype)."""
    held: list[Batch] = []
    count = 0

    def merged() -> Batch:
        columns = {}
        for key in held[0]:
            parts = [b[key] for b in held]
            columns[key] = empty((sum(len(part) for part in parts), *parts[0].shape[1:]), parts[0].dtype)
            np.concatenate(parts, out=columns[key])
        return columns

    for batch in batches:
        held.append(batch)
        count += len(batch["id"])
        while count >= size:
            columns = merged()
            yield {k: v[:size] for k, v in columns.items()}
            count -= size
            held = [{k: v[size:] for k, v in columns.items()}] if count else []
    if count:
        yield merged()


def pinned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Page-locked memory for pixels (the host-to-device copy is then a DMA straight from it,
    asynchronous to the host), plain memory for the rest."""
    import torch

    if dtype != np.uint8:
        return np.empty(shape, dtype)
    return torch.empty(shape, dtype=torch.uint8, pin_memory=True).numpy()


def model_batches(files: list[str], filesystem, preprocess: Preprocess, size: int, pool: Executor, depth: int,
                  pin: bool, ahead: int = 2) -> Iterator[Batch]:
    """Model-sized batches, regrouped by a thread of their own, ``ahead`` batches ahead: the
    calling threads, like a model actor, only copy to the device and run the model. The thread
    starts now, so reads begin before the first batch is asked for."""
    ready: queue.Queue = queue.Queue(maxsize=ahead)
    finished = object()

    def fill() -> None:
        try:
            for batch in rebatched(prefetched(files, filesystem, preprocess, pool, depth), size,
                                   pinned_empty if pin else np.empty):
                ready.put(batch)
            ready.put(finished)
        except BaseException as error:  # re-raised in the consumer: no batch is lost silently
            ready.put(error)

    threading.Thread(target=fill, name="regroup", daemon=True).start()

    def drain() -> Iterator[Batch]:
        while (item := ready.get()) is not finished:
            if isinstance(item, BaseException):
                raise item
            yield item

    return drain()


def as_table(predictions: Batch) -> pa.Table:
    """A Predictor's output as the pyarrow table the predictions file takes."""
    columns = {}
    for key, values in predictions.items():
        if values.ndim == 2:
            columns[key] = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])
        else:
            columns[key] = pa.array(values)
    return pa.table(columns)


def predicted(predictor, batches: Iterator[Batch], calls_in_parallel: int) -> Iterator[pa.Table]:
    """Each batch's predictions, ``calls_in_parallel`` threads calling the predictor at once (as
    a threaded model actor does): while one waits for its results, another launches its batch."""
    done: queue.Queue = queue.Queue(maxsize=2 * calls_in_parallel)
    lock = threading.Lock()
    finished = object()

    def caller() -> None:
        try:
            while True:
                with lock:
                    batch = next(batches, None)
                if batch is None:
                    break
                done.put(as_table(predictor(batch)))
        except BaseException as error:
            done.put(error)
        finally:
            done.put(finished)

    for index in range(calls_in_parallel):
        threading.Thread(target=caller, name=f"call-{index}", daemon=True).start()
    running = calls_in_parallel
    while running:
        item = done.get()
        if item is finished:
            running -= 1
        elif isinstance(item, BaseException):
            raise item
        else:
            yield item
