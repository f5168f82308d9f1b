"""`bench run`: dataset -> launcher (Ray, or one process) -> exactly-once check -> Result -> bundle."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.config import RunConfig, resolve
from bench.errors import BenchError
from bench.results import bundle, envinfo, reference, report
from bench.results.result import Result
from bench.results.secrets import scrub_uri
from bench.run import datasets
from bench.run.launchers import Launcher, launcher
from bench.stages import precision, quantize
from bench.stages.startup import Lane
from bench.stages.weights import load_model, resolve_weights_file
from bench.telemetry import collector, summary
from bench.variants import variant
from data_prep.common.cli import stop_signal
from data_prep.common.errors import Interrupted, is_disk_full
from data_prep.common.shard_format import FORMATS

def default_path(kind: str, name: str) -> Path:
    """Where a command writes ``name`` by default: in $BENCH_RESULTS_DIR (the images set
    /results), else under results/``kind`` (runs, perf, reports); NAME may hold {stamp}, the
    time in UTC."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    root = Path(os.environ["BENCH_RESULTS_DIR"]) if os.environ.get("BENCH_RESULTS_DIR") else Path("results") / kind
    return root / name.format(stamp=stamp)


def default_out(size: str | None, pipeline_name: str) -> Path:
    """A new bundle directory (default_path)."""
    return default_path("runs", f"{{stamp}}-{size or 'data'}-{pipeline_name}")


def dataset_ids(dataset: datasets.Dataset) -> pa.Array:
    """The ids the run must predict: every image of every shard it reads."""
    tables = [pq.read_table(path, columns=["id"], filesystem=dataset.filesystem) for path in dataset.shard_files]
    return pa.concat_tables(tables).column("id").combine_chunks()


def quantized_model(dataset: datasets.Dataset, config: RunConfig, show_progress: bool) -> tuple[bytes, dict[str, Any]]:
    """int8's calibrated model for every actor, and what the bundle records of it."""
    from rich.console import Console

    calibration = quantize.calibration_batch(dataset.shard_files, dataset.filesystem)
    with Console(stderr=True, quiet=not show_progress).status(
            f"calibrating int8 on {len(calibration['id'])} images (once, before the timed run)"):
        state = quantize.int8_state_for(variant(config.pipeline), config.weights, config.weights_seed, calibration)
    return state, {"engine": quantize.ENGINE, "calibration_ids": [str(i) for i in calibration["id"]],
                   "state_sha256": quantize.state_sha256(state)}


def check_exactly_once(expected: pa.Array, predictions: Path) -> None:
    """Every input image exactly once in the predictions, or a loud failure."""
    got = pq.read_table(predictions, columns=["id"]).column("id").combine_chunks()
    counts = pc.value_counts(got)
    duplicated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    missing = pc.filter(expected, pc.invert(pc.is_in(expected, value_set=got)))
    unexpected = pc.filter(got, pc.invert(pc.is_in(got, value_set=expected)))
    if len(duplicated) or len(missing) or len(unexpected) or len(got) != len(expected):
        sample = lambda a: ", ".join(a.to_pylist()[:5])  # noqa: E731
        raise BenchError(
            f"predictions do not cover the dataset exactly once: {len(expected)} images in, {len(got)} "
            f"predictions out, {len(missing)} missing ({sample(missing)}), {len(duplicated)} duplicated "
            f"({sample(duplicated)}), {len(unexpected)} unknown ({sample(unexpected)}); no bundle was written"
        )


def accuracy(predictions: Path) -> dict[str, Any] | None:
    table = pq.read_table(predictions, columns=["label", "top1", "top5"])
    labelled = table.filter(pc.greater_equal(table.column("label"), 0))
    if labelled.num_rows == 0:
        return None
    labels = labelled.column("label").to_numpy()
    top1 = labelled.column("top1").to_numpy()
    top5 = labelled.column("top5").combine_chunks().flatten().to_numpy().reshape(-1, 5)
    return {
        "labelled_images": int(labelled.num_rows),
        "top1": float((top1 == labels).mean()),
        "top5": float((top5 == labels[:, None]).any(axis=1).mean()),
    }


def images_per_node(predictions: Path) -> dict[str, dict[str, int]]:
    table = pq.read_table(predictions, columns=["preprocess_node", "model_node"])
    return {
        column: {str(v["values"]): int(v["counts"]) for v in pc.value_counts(table.column(column)).to_pylist()}
        for column in ("preprocess_node", "model_node")
    }


def run(size: str | None, data: str | None, config: RunConfig, address: str | None,
        out: Path | None, show_progress: bool = True,
        telemetry_interval_s: float | None = collector.DEFAULT_INTERVAL_S,
        verify_data: bool = False, skip_bad_shards: bool = False, engine: Launcher | None = None) -> Path:
    """One run of ``config`` through ``engine`` (default: Ray), on a named synthetic ``size`` or
    the dataset at ``data``; returns the bundle's path."""
    engine = engine or launcher("ray")
    driver = Lane("driver")
    if address:  # a cluster decides where the data may come from
        engine.connect(address)
        if not data and len(engine.nodes()) > 1:
            raise BenchError(datasets.cluster_data_needed(size or "mini"))
    dataset = datasets.resolve(size, data, show_progress=show_progress, verify_data=verify_data,
                               skip_bad=skip_bad_shards)
    if dataset.manifest["format"] not in FORMATS:
        raise BenchError(f"{dataset.uri}: unknown dataset format {dataset.manifest['format']!r}")
    _, weights_sha256 = load_model(config.weights, config.weights_seed)  # fails early on missing weights
    engine.connect(address)
    driver.mark("engine connected")
    nodes = engine.nodes()
    placement = engine.place(config, nodes)
    config = resolve(config, placement.kind, dataset.manifest["format"])
    engine.check_readable(dataset, placement)
    driver.mark("cluster ready")

    int8_state, int8 = quantized_model(dataset, config, show_progress) if config.precision == "int8" else (None, None)
    if int8_state is not None:
        driver.mark("int8 calibrated")

    warmup = engine.warm_up(config, nodes)
    if warmup is not None:
        driver.mark("warm-up done")

    writer = bundle.BundleWriter(out or default_out(dataset.size, config.pipeline))
    report_abandoned(writer.abandoned)
    telemetry = engine.start_telemetry(nodes, telemetry_interval_s) if telemetry_interval_s else None
    try:
        predictions = writer.path(bundle.PREDICTIONS)
        try:
            try:
                timings, stats = engine.execute(dataset, config, placement, predictions, weights_sha256, show_progress,
                                                int8_state, driver)
            except Exception as exc:
                raise engine.failure(exc, dataset) from exc
        finally:
            samples = engine.stop_telemetry(telemetry) if telemetry is not None else None
        alive = {n["node_id"] for n in engine.nodes()}
        lost = sorted(n["node_id"] for n in nodes if n["node_id"] not in alive)
        try:
            check_exactly_once(dataset_ids(dataset), predictions)
        except BenchError as exc:
            if lost:
                raise BenchError(f"{exc} ({len(lost)} node(s) were lost during the run: {', '.join(l[:12] for l in lost)})") from None
            raise
        costs = {"precision_cost": None, "decoding_cost": None}
        if config.precision != "fp32" or config.decode_on_device:  # after the timed run, on the actors' kind of device
            sample = precision.sample_batch(dataset.shard_files, dataset.filesystem)
            costs = engine.accuracy_costs(config, placement, weights_sha256, sample, int8_state)
        if stats is not None:
            writer.write_text(bundle.STATS, stats)
        if samples is not None:
            summary.write_parquet(samples, writer.path(bundle.TELEMETRY))
        recorded = config.as_dict()
        if config.weights not in ("random", "imagenet"):
            recorded["weights"] = "file"  # a local path says nothing to others
        result = Result(
            kit_version=envinfo.__version__,
            created_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            launcher={"name": engine.name, **({"version": version} if (version := engine.version()) else {}),
                      **({"options": engine.options} if engine.options else {})},
            images=timings.images,
            throughput_img_s=timings.images / timings.total_s,
            throughput_img_s_excl_metadata=timings.images / timings.excl_metadata_s,
            timings={"wall_s": timings.total_s, "wall_s_excl_metadata": timings.excl_metadata_s,
                     "metadata_s": timings.metadata_s, "first_predictions_images": timings.first_rows},
            dataset_sha256=dataset.sha256,
            dataset_images=dataset.manifest["totals"]["images"],
            skipped_shards=[bad.as_dict() for bad in dataset.bad],
            dataset={"uri": scrub_uri(dataset.uri), "size": dataset.size, "kind": dataset.manifest["kind"],
                     "format": dataset.manifest["format"], "shards": dataset.manifest["totals"]["shards"]},
            weights=config.weights if config.weights in ("random", "imagenet") else "file",
            weights_file=resolve_weights_file(config.weights).name if config.weights != "random" else None,
            weights_sha256=weights_sha256,
            pipeline=config.pipeline,
            config=recorded,
            placement={k: v for k, v in placement.as_dict().items() if k != "nodes"},
            accuracy=accuracy(predictions),
            precision_cost=costs["precision_cost"],
            decoding_cost=costs["decoding_cost"],
            int8=int8,
            images_per_node=images_per_node(predictions),
            stages=timings.stages or [],
            events=timings.events,
            startup={"lanes": timings.lanes or [], "warmup": warmup},
            telemetry=summary.summarise(samples, timings.images) if samples is not None else None,
            reference=reference.ray_run_for(dataset.size),
            nodes={"at_start": sorted(n["node_id"] for n in nodes), "lost": lost},
        )
        return writer.commit(result, envinfo.capture(nodes), finish=lambda staging: report.write([staging], staging / bundle.REPORT))
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: keep what there is, marked incomplete
        raise interrupted(writer, exc, dataset.images) from exc
    except OSError as exc:
        writer.abandon()
        if is_disk_full(exc):
            raise BenchError(f"no space left on the device holding {writer.final.parent} while writing the bundle; "
                             f"nothing was kept: free space there or choose another --out") from exc
        raise
    except BaseException:
        writer.abandon()
        raise


def report_abandoned(paths: list[Path]) -> None:
    """Name what killed runs left behind, once per run, whatever --quiet says."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for path in paths:
        console.print(f"note: {path} was left by a bench run that was killed before it could clean up (SIGKILL, the "
                      f"OOM killer, or its Ray cluster died under it); it holds no result, only the predictions that "
                      f"run had received. Delete it when you no longer need it.", markup=False)


def interrupted(writer: bundle.BundleWriter, exc: KeyboardInterrupt, expected: int) -> Interrupted:
    predictions = writer.path(bundle.PREDICTIONS)
    try:
        written = pq.ParquetFile(predictions).metadata.num_rows
    except (OSError, pa.ArrowException):
        written = 0
    signal_name = stop_signal(exc)
    path = writer.keep_incomplete({"reason": signal_name, "images_written": written, "images_expected": expected,
                                   "stopped_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    return Interrupted(f"{signal_name} stopped the run after {written:,} of {expected:,} images; {path} keeps the "
                       f"predictions so far, marked incomplete ({bundle.INCOMPLETE}; `bench verify` rejects it). "
                       f"Run the same command again (with a new --out) for a result")
