"""`bench run`: dataset -> Ray cluster -> pipeline -> exactly-once check -> result bundle."""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console

from bench.results import bundle, envinfo, reference, report
from bench.run import cluster, datasets, pipeline
from bench.stages import precision, quantize
from bench.telemetry import collector, summary
from bench.config import RunConfig, resolve
from bench.errors import BenchError
from bench.stages.weights import load_model, resolve_weights_file
from bench.results.secrets import scrub_uri
from bench.variants import variant
from data_prep.common.cli import handle_sigterm, stop_signal
from data_prep.common.errors import Interrupted, is_disk_full
from data_prep.common.failures import ray_temp_dir
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


def connect(address: str | None) -> None:
    """Join ``address`` (refused within seconds when nothing answers there) or start a local
    Ray whose object store fits this machine; keep Ray's INFO chatter off the user's screen."""
    import ray

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ray.is_initialized():
        return
    if address:
        check_reachable(address)
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        check_local_start()
        store, notice = object_store()
        if notice:
            Console(stderr=True, highlight=False, soft_wrap=True).print(notice, markup=False)
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, **store)
    handle_sigterm()  # ray.init replaced ours with one that aborts: a SIGTERM must leave a marked bundle


def object_store() -> tuple[dict[str, Any], str | None]:
    """``ray.init`` arguments for a local Ray's object store, and a notice for the user (or None).

    Ray's default store (30% of memory) lives in /dev/shm when it fits. Where it does not (Docker's
    default /dev/shm is 64 MB), the store is a file in the temp dir instead: Ray itself falls back
    so for stores under 10 GB and refuses above. The file measured as fast as /dev/shm on a 2-core
    CPU machine (docs/docker.md, "Shared memory"), so the kit takes it rather than fail."""
    from ray._common.utils import get_system_memory
    from ray._private import ray_constants

    wanted = min(int(get_system_memory() * ray_constants.DEFAULT_OBJECT_STORE_MEMORY_PROPORTION),
                 ray_constants.DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES)
    try:
        shm = shutil.disk_usage("/dev/shm").free
    except OSError:
        shm = 0
    if shm >= wanted:
        return {}, None
    directory = tempfile.gettempdir()
    suggested = math.ceil(wanted * 1.1 / 2**30)
    return ({"object_store_memory": wanted, "_plasma_directory": directory},
            f"note: /dev/shm has {shm / 2**20:,.0f} MB free, less than Ray's {wanted / 2**30:,.1f} GB object store, "
            f"so the store is a file in {directory}; `docker run --shm-size={suggested}g` keeps it in memory "
            f"(what that buys: docs/docker.md, \"Shared memory\")")


# Ray's session files (logs, sockets) take a few MB; below this, its node times out starting.
MIN_TEMP_FREE_BYTES = 64 * 2**20


def check_local_start() -> None:
    """Refuse at once what makes a local Ray hang for a minute before it fails: a full disk
    under its temp dir, or a fixed GCS port (RAY_GCS_SERVER_PORT) that something else holds."""
    import socket

    temp = Path(ray_temp_dir())
    existing = next(p for p in (temp, *temp.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < MIN_TEMP_FREE_BYTES:
        raise BenchError(f"only {free / 2**20:,.1f} MB free under {temp}, Ray's temp dir: Ray keeps its session files "
                         f"and spilled objects there. Free space, or set RAY_TMPDIR to a directory on a disk with room")
    port = os.environ.get("RAY_GCS_SERVER_PORT")
    if port:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("", int(port)))
            except OSError as exc:
                raise BenchError(f"port {port} (RAY_GCS_SERVER_PORT) is already in use ({exc.strerror}): stop what "
                                 "holds it (`ss -ltnp` names it), or unset RAY_GCS_SERVER_PORT to let Ray choose") from None


REACH_TIMEOUT_S = 5.0


def check_reachable(address: str) -> None:
    """A clear error within seconds when nothing answers at ``address`` (``auto`` resolves as
    Ray resolves it): Ray itself retries a dead address for minutes."""
    import socket

    from ray._private.services import canonicalize_bootstrap_address_or_die

    if address.startswith("ray://"):
        target, origin = address.removeprefix("ray://"), address
    else:
        try:
            target = canonicalize_bootstrap_address_or_die(address)
        except ConnectionError as exc:
            raise BenchError(f"--address {address}: {exc} Start one with `ray start --head`, or leave --address out "
                             "to run on this machine") from None
        origin = address if address == target else f"{address} -> {target}"
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        raise BenchError(f"no Ray cluster answers at {origin} ({exc}): start it (`ray start --head`), check the "
                         "address (`ray status` on its head prints it), or leave --address out to run on this "
                         "machine") from None


def dataset_ids(dataset: datasets.Dataset) -> pa.Array:
    """The ids the run must predict: every image of every shard it reads."""
    tables = [pq.read_table(path, columns=["id"], filesystem=dataset.filesystem) for path in dataset.shard_files]
    return pa.concat_tables(tables).column("id").combine_chunks()


def pipeline_failure(exc: Exception, dataset: datasets.Dataset) -> Exception:
    """Ray's task errors, as one line that says what to do; anything else unchanged."""
    import ray.exceptions

    if isinstance(exc, BenchError) or not isinstance(exc, ray.exceptions.RayError):
        return exc
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = lines[-1] if lines else type(exc).__name__
    return BenchError(f"the pipeline failed after Ray's retries: {cause}. No bundle was written. If a shard may be "
                      f"damaged, `data-prep verify {dataset.uri}` names it (or rerun with --verify-data, and "
                      f"--skip-bad-shards to run without it)")


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
        verify_data: bool = False, skip_bad_shards: bool = False) -> Path:
    dataset = datasets.resolve(size, data, show_progress=show_progress, verify_data=verify_data,
                               skip_bad=skip_bad_shards)
    if dataset.manifest["format"] not in FORMATS:
        raise BenchError(f"{dataset.uri}: unknown dataset format {dataset.manifest['format']!r}")
    _, weights_sha256 = load_model(config.weights, config.weights_seed)  # fails early on missing weights
    connect(address)
    nodes = cluster.alive_nodes()
    placement = cluster.place(config, nodes)
    config = resolve(config, "cuda" if placement.actor_num_gpus else "cpu", dataset.manifest["format"])

    int8_state, int8 = quantized_model(dataset, config, show_progress) if config.precision == "int8" else (None, None)

    writer = bundle.BundleWriter(out or default_out(dataset.size, config.pipeline))
    report_abandoned(writer.abandoned)
    samplers = collector.start_cluster_telemetry(nodes, telemetry_interval_s) if telemetry_interval_s else []
    try:
        predictions = writer.path(bundle.PREDICTIONS)
        try:
            try:
                timings, stats = pipeline.run(dataset.shard_files, dataset.filesystem, config, placement, predictions,
                                               dataset.images, weights_sha256, show_progress, int8_state,
                                               dataset.manifest["format"])
            except Exception as exc:
                raise pipeline_failure(exc, dataset) from exc
        finally:
            samples = collector.stop_cluster_telemetry(samplers) if samplers else None
        check_exactly_once(dataset_ids(dataset), predictions)
        costs = {"precision_cost": None, "decoding_cost": None}
        if config.precision != "fp32" or config.decode_on_device:  # after the timed run, on the actors' kind of device
            sample = precision.sample_batch(dataset.shard_files, dataset.filesystem)
            costs = pipeline.accuracy_costs_on_model_device(config, placement, weights_sha256, sample, int8_state)
        writer.write_text(bundle.STATS, stats)
        if samples is not None:
            summary.write_parquet(samples, writer.path(bundle.TELEMETRY))
        result = {
            "kit_version": envinfo.__version__,
            "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "complete": True,
            "images": timings.images,
            "throughput_img_s": timings.images / timings.total_s,
            "throughput_img_s_excl_metadata": timings.images / timings.excl_metadata_s,
            "timings": {"wall_s": timings.total_s, "wall_s_excl_metadata": timings.excl_metadata_s,
                        "metadata_s": timings.metadata_s},
            "dataset_sha256": dataset.sha256,
            "dataset_images": dataset.manifest["totals"]["images"],
            "skipped_shards": [bad.as_dict() for bad in dataset.bad],
            "dataset": {"uri": scrub_uri(dataset.uri), "size": dataset.size, "kind": dataset.manifest["kind"],
                        "format": dataset.manifest["format"], "shards": dataset.manifest["totals"]["shards"]},
            "weights": config.weights if config.weights in ("random", "imagenet") else "file",
            "weights_sha256": weights_sha256,
            "pipeline": config.pipeline,
            "config": config.as_dict(),
            "placement": {k: v for k, v in placement.as_dict().items() if k != "nodes"},
            "accuracy": accuracy(predictions),
            **costs,
            "int8": int8,
            "images_per_node": images_per_node(predictions),
            "stages": timings.stages,
            "events": timings.events,
            "telemetry": summary.summarise(samples, timings.images) if samples is not None else None,
            "reference": reference.ray_run_for(dataset.size),
        }
        if config.weights != "random":
            result["weights_file"] = resolve_weights_file(config.weights).name
        if config.weights not in ("random", "imagenet"):
            result["config"]["weights"] = "file"  # a local path says nothing to others
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
