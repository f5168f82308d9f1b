"""The Ray Data pipeline, assembled in one place from the variant's plain stages.

read_parquet -> preprocess (tasks) -> Predictor (actor pool) -> predictions, consumed on the
driver as batches arrive (bench.run.predictions). Timing follows the reference: from before
``read_parquet`` (including metadata fetch), and from just before the ``map_batches`` calls
(excluding it).
"""

from __future__ import annotations

import importlib
import math
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.config import RunConfig
from bench.run.cluster import Placement
from bench.run.predictions import Stopwatch, Timings, write_predictions
from bench.stages.startup import Lane
from bench.variants import variant
from data_prep.common.shard_format import COLUMNS


def run(files: list[str], filesystem, config: RunConfig, placement: Placement, predictions_path: Path,
        expected_images: int, weights_sha256: str, show_progress: bool = True,
        int8_state: bytes | None = None, fmt: str = "raw", driver: Lane | None = None) -> tuple[Timings, str]:
    """Run the pipeline; returns its timings and Ray Data's stats text.

    Read tasks are sized by Ray Data itself: its parquet reader bin-packs row groups into read
    units of up to 128 MiB (RAY_DATA_PARQUET_BIN_PACKING_BYTES) and ignores
    ``override_num_blocks``, so a 1,000-image raw shard (~197 MB) becomes two read tasks. Each
    task's output is cut into blocks of ``config.read_block_mib``; the model actors' tasks are
    made of those blocks.
    """
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    with data_context(config.read_block_mib, spread=bool(placement.actor_nodes)):
        chosen = variant(config.pipeline)
        predictor_args = chosen.predictor_args(config, placement.device, weights_sha256, int8_state)
        if chosen.ships_model:  # built on the driver and put in the object store before the timer
            from bench.stages.weights import load_model

            predictor_args["model"] = ray.put(load_model(config.weights, config.weights_seed)[0])
            if driver is not None:
                driver.mark("model in the object store")
        stopwatch = Stopwatch(driver)
        ds = read_shards(files, filesystem, placement)
        stopwatch.read_called()
        ds = predict(ds, chosen.preprocess_for(fmt, config.decode_on_device), chosen.predictor(), predictor_args,
                     config, placement)
        images = write_predictions(ds.iter_batches(batch_size=None, batch_format="pyarrow"), predictions_path,
                                   config.save_logits, expected_images, stopwatch, config.stall_timeout_s, show_progress)
        stats = ds.stats()
        return stopwatch.finish(images, stage_times(stats)), stats


def read_shards(files: list[str], filesystem, placement: Placement):
    """The manifest's shards as a Ray dataset, never a directory listing: a stray file is not
    silently read. Reads run where preprocessing does, so that Ray Data can fuse a crop on whole
    blocks into the read tasks (RunConfig.for_data): only crops go through the object store."""
    import ray

    with footer_readers(len(files)):
        ds = ray.data.read_parquet(files, filesystem=filesystem, label_selector=placement.preprocess_label_selector())
    return ds.select_columns(COLUMNS)


FOOTER_READERS_ENV = "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS"
RAY_FOOTER_INDEXER = "ray.data._internal.datasource_v2.formats.parquet.footer_file_indexer"


def footer_readers_wanted(files: int) -> int | None:
    """Footer readers to ask Ray for: one per call's worth of files (Ray's files per call, 10 in
    Ray Data 2.60), or None to leave Ray's choice (its own 32 or fewer would be needed, the user
    set the variable, or a Ray without this indexer). Ray's module is imported before the
    variable is ever set: it keeps the value it sees at its first import as its default for
    every later call."""
    if FOOTER_READERS_ENV in os.environ:
        return None
    try:
        indexer = importlib.import_module(RAY_FOOTER_INDEXER)
        ray_readers, files_per_call = indexer._DEFAULT_NUM_ACTORS, indexer._DEFAULT_BATCH_SIZE
    except (ImportError, AttributeError):
        return None
    wanted = math.ceil(files / files_per_call)
    return wanted if 0 < wanted < ray_readers else None


@contextmanager
def footer_readers(files: int) -> Iterator[None]:
    """``read_parquet`` with only as many parquet footer readers as ``files`` can keep busy.

    Ray Data lists parquet files through a pool of ``FooterReader`` actors per ``read_parquet``
    call, each in a worker process of its own, sized for many files whatever their number: for
    a small dataset they start on the cores where the model actor is starting, to read a few
    footers (what one reader per call's worth buys: docs/performance.md). Ray reads the
    variable when ``read_parquet`` builds its file indexer, so it is set around that call only;
    a value the user set is kept, and large datasets keep Ray's pool (footer_readers_wanted)."""
    wanted = footer_readers_wanted(files)
    if wanted is None:
        yield
        return
    os.environ[FOOTER_READERS_ENV] = str(wanted)
    try:
        yield
    finally:
        del os.environ[FOOTER_READERS_ENV]


def predict(ds, preprocess, predictor: type, predictor_kwargs: dict[str, Any], config: RunConfig,
            placement: Placement):
    """``ds`` preprocessed in tasks where it was read, then predicted by a pool of
    ``placement.actors`` ``predictor`` actors in batches of ``config.batch_size``.

    Each actor task is a bundle of whole blocks, and its last batch is short.
    ``config.whole_batches`` re-cuts the crops into blocks of exactly one batch with Ray Data's
    streaming repartition, at the cost of copying every crop once more in tasks of its own: off
    by default until a GPU shows that the short batches cost more than the copy
    (docs/experiments/2026-12-01/)."""
    ds = ds.map_batches(preprocess, batch_format="numpy", batch_size=config.preprocess_batch_size,
                        label_selector=placement.preprocess_label_selector())
    if config.whole_batches:
        ds = ds.repartition(target_num_rows_per_block=config.batch_size, strict=True)
    with warnings.catch_warnings():  # deprecated for Ray 2.64; a label selector per actor is not offered yet
        warnings.filterwarnings("ignore", message=".*ray_remote_args_fn.*")
        return _predict_in_pool(ds, predictor, predictor_kwargs, config, placement)


def _predict_in_pool(ds, predictor: type, predictor_kwargs: dict[str, Any], config: RunConfig, placement: Placement):
    import ray

    return ds.map_batches(
        predictor,
        fn_constructor_kwargs=predictor_kwargs,
        batch_size=config.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(
            size=placement.actors,
            max_concurrent_calls_per_actor=config.calls_per_actor,
            enable_true_multi_threading=config.threaded_actors,
        ),
        num_gpus=placement.actor_num_gpus,
        num_cpus=placement.actor_num_cpus,
        ray_remote_args_fn=placement.actor_remote_args(),
    )


@contextmanager
def data_context(read_block_mib: int | None, spread: bool = False) -> Iterator[None]:
    """Ray Data's context for one run, put back after it (it outlives the run, and `bench perf`
    runs `bench micro` after it on Ray's defaults):

    - the read blocks' target size, ``read_block_mib`` (None: Ray's default);
    - blocks kept in order (``preserve_order``), so that the model's batches are made of the
      same images in every run: unordered, Ray Data bundles blocks for the actors in the order
      they finish, so which images share a batch, and its size, change from run to run, and a
      GPU's kernels depend on the batch's size (docs/reproducing.md);
    - with ``spread`` (model actors spread over CPU nodes), blocks flow only once every model
      actor is up, and go to the least busy actor rather than one on the block's node: otherwise
      the first actor ready, or the one where the reads ran, takes a small dataset's blocks and
      one node does all the work. A CPU spends ~100 ms per image on the model, moving a 150 KB
      crop to another node ~0.1 ms, so balance is worth more than locality here."""
    import ray

    context = ray.data.DataContext.get_current()
    options = context.execution_options
    before = (context.target_max_block_size, options.preserve_order, context.wait_for_min_actors_s,
              options.actor_locality_enabled)
    if read_block_mib:
        context.target_max_block_size = read_block_mib * 2**20
    options.preserve_order = True
    if spread:
        context.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
        _set_actor_locality(options, False)
    try:
        yield
    finally:
        context.target_max_block_size, options.preserve_order, context.wait_for_min_actors_s = before[:3]
        _set_actor_locality(options, before[3])


def _set_actor_locality(options, enabled: bool) -> None:
    with warnings.catch_warnings():  # deprecated for 2027, and still the only switch
        warnings.filterwarnings("ignore", message=".*actor_locality_enabled.*")
        options.actor_locality_enabled = enabled


# Long enough for a cold node to import torch and build the model; Ray's error names the pool.
ACTOR_START_TIMEOUT_S = 600


def accuracy_costs_on_model_device(config: RunConfig, placement: Placement, weights_sha256: str,
                   sample: dict[str, Any], int8_state: bytes | None = None) -> dict[str, dict[str, Any] | None]:
    """bench.stages.precision.accuracy_costs (reduced precision against fp32, decoding on the model's
    device against the CPU's) in one Ray task shaped like a model actor, so on the same kind of
    device (and node) as the run's model."""
    import ray

    def measure(sample: dict[str, Any], int8_state: bytes | None) -> dict[str, dict[str, Any] | None]:
        from bench.stages.precision import accuracy_costs

        chosen = variant(config.pipeline)
        predictor = chosen.predictor()(**chosen.predictor_args(config, placement.device, weights_sha256, int8_state))
        return accuracy_costs(predictor, chosen.preprocess(), sample, config.decode_on_device)

    # int8's model travels as an argument (through the object store), not inside the function.
    task = ray.remote(num_gpus=placement.actor_num_gpus, num_cpus=placement.actor_num_cpus)(measure)
    return ray.get(task.remote(sample, int8_state))


_OPERATOR = re.compile(r"^Operator \d+ (?P<name>[^:]+): .* in (?P<seconds>[\d.]+)s$", re.M)


def stage_times(stats: str) -> list[dict[str, Any]]:
    """Per-operator wall times parsed from Ray Data's stats text."""
    return [{"operator": m["name"], "wall_s": float(m["seconds"])} for m in _OPERATOR.finditer(stats)]
