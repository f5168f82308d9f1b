"""One-call check of the GPU path, for a lent GPU machine that has torch, torchvision, pyarrow
and nvidia-ml-py but no Ray. It drives the pipeline's own stages in one process: parquet shards
(the synthetic generator's, made here, or ``--data DIR``) are read row group by row group and
preprocessed by the variant's ``preprocess`` in a pool of loader threads or processes that
prefetch ahead (what Ray's read and map tasks do), regrouped into model batches in page-locked
memory by one more thread, and fed to the variant's ``Predictor`` (exactly what the Ray actors
call) in the main thread, with the NVML sampler on. Prints one JSON object:
the model-only ceiling, the end-to-end figure and its ratio, GPU utilisation, energy per image,
and reduced precision's cost against fp32. Two more figures split the gap between the ceiling
and end to end: the predictor's full call (copy in, normalise, forward, results out) on a batch
already in host memory, without the loader; and the host-to-device copy's bandwidth. One more
asks whether an image's logits depend on the size of the batch it is computed in
(batch_size_effect; not for compiled models, which would compile again for the other size).

    PYTHONPATH=. python3 -m bench.gpu_check                  # the default pipeline, its defaults
    PYTHONPATH=. python3 -m bench.gpu_check --pipeline seed  # the reference, for the ratio
    bench/gpu_check.sh OUT_DIR                               # the prepared set of checks, one table

Batch size and precision default to what `bench run` would use on this device.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torchvision

from bench.stages import precision, quantize
from bench.config import RunConfig, resolve
from bench.variants import variant
from bench.telemetry.collector import SamplingLoop
from bench.telemetry.summary import mean_gpu_util, summarise
from bench.measure.timing import images_per_second, model_ceiling, sync
from data_prep import synth
from data_prep.common.cores import usable_cores
from data_prep.common.shard_format import COLUMNS, FORMATS, table_to_batch


def make_dataset(directory: Path, images: int, fmt: str, workers: int) -> tuple[list[Path], str]:
    """Synthetic shards made by `data-prep synth`'s own builder (manifest and checksums
    included); a directory already complete is kept, so several checks in one call share it."""
    synth.generate(str(directory), images, fmt=fmt, workers=workers, show_progress=False)
    return dataset(directory)


def dataset(directory: Path) -> tuple[list[Path], str]:
    """A data-prep dataset's shard files and format, from its manifest."""
    manifest = json.loads((directory / "manifest.json").read_text())
    return [directory / shard["file"] for shard in manifest["shards"]], manifest["format"]


def read_row_group(path: Path, index: int) -> dict[str, np.ndarray]:
    return table_to_batch(pq.ParquetFile(path).read_row_group(index, columns=COLUMNS))


Preprocess = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def load_row_group(preprocess: Preprocess, path: Path, index: int) -> dict[str, np.ndarray]:
    """One row group read and preprocessed: a loader worker's task (a module-level function, so
    that a process pool can run it)."""
    return preprocess(read_row_group(path, index))


def loader_pool(workers: int, processes: bool) -> Executor:
    """The loader's workers, started: threads (pyarrow and numpy release the GIL while they read
    and crop), or processes, as Ray's preprocessing tasks are, where the work holds the GIL
    (Pillow opens each JPEG in Python code). Processes are spawned, not forked: this process
    has already set up CUDA."""
    if not processes:
        return ThreadPoolExecutor(workers, thread_name_prefix="loader")
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    for started in [pool.submit(time.sleep, 0.5) for _ in range(workers)]:  # one each: every worker starts now,
        started.result()                                                     # not in the timed run
    return pool


def prefetched(files: list[Path], preprocess: Preprocess, pool: Executor, depth: int) -> Iterator[dict[str, np.ndarray]]:
    """Preprocessed row groups in order, ``depth`` of them read and preprocessed ahead by the
    ``pool``'s workers."""
    row_groups = {path: pq.ParquetFile(path).num_row_groups for path in set(files)}  # files repeat with --passes
    units = [(path, i) for path in files for i in range(row_groups[path])]
    pending: queue.Queue = queue.Queue()
    for unit in units[:depth]:
        pending.put(pool.submit(load_row_group, preprocess, *unit))
    for unit in units[depth:] + [None] * min(depth, len(units)):
        batch = pending.get().result()
        if unit is not None:
            pending.put(pool.submit(load_row_group, preprocess, *unit))
        yield batch


def rebatched(batches: Iterator[dict[str, np.ndarray]], size: int,
              empty: Callable[..., np.ndarray] = np.empty) -> Iterator[dict[str, np.ndarray]]:
    """Row groups (128 images) regrouped into model batches of ``size``, each column copied once,
    into arrays from ``empty`` (shape, dtype)."""
    held: list[dict[str, np.ndarray]] = []
    count = 0

    def merged() -> dict[str, np.ndarray]:
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
    if dtype != np.uint8:
        return np.empty(shape, dtype)
    return torch.empty(shape, dtype=torch.uint8, pin_memory=True).numpy()


def model_batches(files: list[Path], preprocess: Preprocess, size: int, pool: Executor, depth: int, pin: bool,
                  ahead: int = 2) -> Iterator[dict[str, np.ndarray]]:
    """Model-sized batches, regrouped (on a GPU into page-locked memory) by a thread of their
    own, ``ahead`` batches ahead: the main thread, like a model actor, only copies to the device
    and runs the model."""
    ready: queue.Queue = queue.Queue(maxsize=ahead)
    finished = object()

    def fill() -> None:
        try:
            for batch in rebatched(prefetched(files, preprocess, pool, depth), size, pinned_empty if pin else np.empty):
                ready.put(batch)
            ready.put(finished)
        except BaseException as error:  # re-raised in the main thread: no batch is lost silently
            ready.put(error)

    threading.Thread(target=fill, name="regroup", daemon=True).start()
    while (item := ready.get()) is not finished:
        if isinstance(item, BaseException):
            raise item
        yield item


def predict_all(predictor, batches: Iterator[dict[str, np.ndarray]], calls_at_once: int = 1) -> dict[str, np.ndarray]:
    """Every image's id and top-1 class, ``calls_at_once`` threads calling the predictor at once
    (as a threaded model actor with that max_concurrency does): while one waits for its results,
    another launches its batch, on its own CUDA stream (bench.stages.fast)."""
    lock = threading.Lock()

    def caller() -> list[dict[str, np.ndarray]]:
        outputs = []
        while True:
            with lock:
                batch = next(batches, None)
            if batch is None:
                return outputs
            out = predictor(batch)
            outputs.append({"id": out["id"], "top1": out["top1"]})

    with ThreadPoolExecutor(calls_at_once, thread_name_prefix="call") as pool:
        outputs = [out for outs in pool.map(lambda _: caller(), range(calls_at_once)) for out in outs]
    if not outputs:
        return {"id": np.array([], object), "top1": np.array([], np.int32)}
    return {key: np.concatenate([out[key] for out in outputs]) for key in ("id", "top1")}


def share_matching(predicted: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> float | None:
    """The share of ``predicted``'s rows, among those whose id ``reference`` holds, with the same
    top-1 class (None if none is there): the end-to-end run's answers against one serial call's.
    Calls at once, streams and regrouping must not change what is computed; random weights
    leave some top-1 margins tiny, so a share just under 1 can be reduced precision's own
    run-to-run noise, while a race between calls shows as far less."""
    expected = dict(zip(reference["id"].tolist(), reference["top1"].tolist()))
    pairs = [(top1, expected[i]) for i, top1 in zip(predicted["id"].tolist(), predicted["top1"].tolist()) if i in expected]
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def batch_size_effect(predictor, crops: np.ndarray) -> dict[str, Any]:
    """Does an image's answer depend on the batch it is computed in? The first 3/8 of one model
    batch (96 of 256: a short last batch as Ray made them, docs/performance.md) computed as a batch
    of their own, against the same images in the full batch; and the full batch computed twice.
    On a GPU, cuDNN picks kernels by batch size: if the smaller batch moves logits while a repeat
    does not, batches that change from run to run explain answers that do."""
    smaller = max(1, len(crops) * 3 // 8)
    full = predictor.logits(crops, predictor.precision).float().cpu()
    again = predictor.logits(crops, predictor.precision).float().cpu()
    alone = predictor.logits(crops[:smaller], predictor.precision).float().cpu()
    in_full = full[:smaller]
    return {
        "smaller_batch": smaller,
        "rows_bit_equal": int((alone == in_full).all(dim=1).sum()) / smaller,
        "top1_agreement": int((alone.argmax(dim=1) == in_full.argmax(dim=1)).sum()) / smaller,
        "max_abs_logit_diff": float((alone - in_full).abs().max()),
        "repeat_bit_equal": bool(torch.equal(full, again)),
    }


def host_to_device_gb_s(pixels: np.ndarray, device: torch.device, min_seconds: float) -> dict[str, float] | None:
    """GB/s of copying one batch's pixels to the GPU from page-locked memory (as the loader
    here hands them over) and from ordinary memory (as Ray's object store does); None on a CPU
    or for JPEG bytes."""
    if device.type != "cuda" or pixels.dtype != np.uint8:
        return None
    pageable = torch.from_numpy(np.array(pixels))
    rates = {}
    for name, host in (("pinned", pageable.pin_memory()), ("pageable", pageable)):
        calls_per_s = images_per_second(lambda: host.to(device, non_blocking=True), 1, min_seconds, device=device)
        rates[name] = calls_per_s * host.nbytes / 1e9
    return rates


@dataclass(frozen=True)
class Check:
    """How one check runs, besides the pipeline's own config (see main's --help)."""
    loader_workers: int = 1
    prefetch: int = 16  # row groups read ahead
    loader_processes: bool = False
    min_seconds: float = 5.0
    compile_model: bool = False
    passes: int = 1
    calls_at_once: int = 1
    decode_on_device: bool = False


def run(files: list[Path], fmt: str, config: RunConfig, check: Check) -> dict[str, Any]:
    """The figures of one check on ``files``, a dataset of format ``fmt`` (see the module's
    docstring)."""
    chosen = variant(config.pipeline)
    load = chosen.keep_encoded() if check.decode_on_device else chosen.preprocess()  # pixel shards come as arrays here
    int8_state = None
    if config.precision == "int8":  # calibrated on the last images, its cost measured on the first, as `bench run`
        int8_state = quantize.int8_state_for(chosen, config.weights, config.weights_seed, quantize.calibration_batch(files))
    predictor = chosen.predictor()(config.weights, config.weights_seed, config.device, config.precision, False,
                                 int8_state=int8_state)
    if check.compile_model:
        predictor.model = torch.compile(predictor.model)
    on_gpu = predictor.device.type == "cuda"
    with ThreadPoolExecutor(1) as one:
        first = next(rebatched(prefetched(files[:1], load, one, 1), config.batch_size,
                               pinned_empty if on_gpu else np.empty))
    ceiling = model_ceiling(predictor, first["image"], min_seconds=check.min_seconds)
    predictor_only = images_per_second(lambda: predictor(first), len(first["id"]), check.min_seconds,
                                       device=predictor.device, streams=check.calls_at_once)
    copy_gb_s = host_to_device_gb_s(first["image"], predictor.device, min(check.min_seconds, 1.0))
    batch_effect = None if check.compile_model else batch_size_effect(predictor, first["image"])
    costs = precision.accuracy_costs(predictor, chosen.preprocess(), precision.sample_batch(files), check.decode_on_device)

    with loader_pool(check.loader_workers, check.loader_processes) as pool:
        loop = SamplingLoop(socket.gethostname(), 0.1, gpus=on_gpu)
        loop.start()
        start = time.perf_counter()
        batches = model_batches(files * check.passes, load, config.batch_size, pool, check.prefetch, on_gpu)
        predicted = predict_all(predictor, batches, check.calls_at_once)
        sync(predictor.device)
        seconds = time.perf_counter() - start
    done = len(predicted["id"])
    telemetry = summarise(loop.stop(), done)
    return {
        "device": str(predictor.device),
        "gpu": torch.cuda.get_device_name(predictor.device) if on_gpu else None,
        "pipeline": config.pipeline, "precision": config.precision, "batch_size": config.batch_size,
        "compiled": check.compile_model, "loader_workers": check.loader_workers,
        "loader": "processes" if check.loader_processes else "threads", "calls_at_once": check.calls_at_once,
        "format": fmt, "decode_on_device": check.decode_on_device,
        "images": done, "passes": check.passes,
        "seconds": seconds,
        "model_only_img_s": ceiling,
        "predictor_only_img_s": predictor_only,
        "host_to_device_gb_s": copy_gb_s,
        "end_to_end_img_s": done / seconds,
        "end_to_end_over_ceiling": done / seconds / ceiling,
        "top1_matches_serial_call": share_matching(predicted, predictor(first)),
        "batch_size_effect": batch_effect,
        "gpu_util_mean_pct": mean_gpu_util(telemetry),
        "energy_j_per_image": telemetry["energy_j_per_image"],
        **costs,
        "telemetry": telemetry,
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "cuda": torch.version.cuda,
                     "cudnn": torch.backends.cudnn.version(), "numpy": np.__version__, "pyarrow": pa.__version__},
    }


def summary_table(results: dict[str, dict[str, Any]]) -> str:
    """One markdown row per check (``results`` by name), the figures docs/performance.md quotes,
    under a line naming the device and the versions of the first check."""
    first = next(iter(results.values()), None)
    rows = [] if first is None else [f"{first['gpu'] or first['device']}; " + ", ".join(
        f"{name} {version}" for name, version in first["versions"].items()), ""]
    rows += ["| check | pipeline | precision | batch | compiled | calls at once | loader | images | model only img/s "
             "| predictor only img/s | end to end img/s | e2e / ceiling | GPU util % | J/image | top-1 vs fp32 "
             "| copy GB/s pinned, pageable | top-1 = serial call | top-1 vs CPU decoding "
             "| logits equal in a smaller batch, repeat |", "|" + "---|" * 19]
    for name, r in results.items():
        cost = r.get("precision_cost") or {}
        copy = r.get("host_to_device_gb_s")
        cells = [name, r["pipeline"], r["precision"], r["batch_size"], "yes" if r["compiled"] else "no",
                 r.get("calls_at_once", 1), r.get("loader", "threads"), f"{r['images']:,}", f"{r['model_only_img_s']:,.0f}",
                 _maybe(r.get("predictor_only_img_s"), ",.0f"), f"{r['end_to_end_img_s']:,.0f}",
                 f"{r['end_to_end_over_ceiling']:.2f}", _maybe(r["gpu_util_mean_pct"], ".0f"),
                 _maybe(r["energy_j_per_image"], ".3f"), _maybe(cost.get("top1_agreement"), ".3f"),
                 "-" if copy is None else f"{copy['pinned']:.1f}, {copy['pageable']:.1f}",
                 _maybe(r.get("top1_matches_serial_call"), ".3f"),
                 _maybe((r.get("decoding_cost") or {}).get("top1_agreement"), ".3f"),
                 _batch_effect_cell(r.get("batch_size_effect"))]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(rows)


def _batch_effect_cell(effect: dict[str, Any] | None) -> str:
    """"0.250 at 96, yes": the share of images whose logits a batch of 96 left bit for bit as
    they were in the full batch, and whether the full batch repeated bit for bit."""
    if effect is None:
        return "-"
    return f"{effect['rows_bit_equal']:.3f} at {effect['smaller_batch']}, {'yes' if effect['repeat_bit_equal'] else 'no'}"


def _maybe(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a prefetch depth of 0 would wait forever,
    a negative one would silently skip row groups)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=positive, default=8192, help="Synthetic images to make (ignored with --data).")
    parser.add_argument("--format", default="raw", choices=FORMATS, help="Synthetic images' format "
                        "(pixels: raw pixels stored for fast reading, see `data-prep synth --help`).")
    parser.add_argument("--scratch", type=Path, help="Make the synthetic set here and keep it for the next check "
                        "(default: a temporary directory).")
    parser.add_argument("--data", type=Path, help="A data-prep dataset directory to read instead.")
    parser.add_argument("--passes", type=positive, default=1, help="Read the dataset this many times in the timed "
                        "run (a fast GPU finishes 8,192 images in seconds).")
    parser.add_argument("--out", type=Path, help="Also write the JSON object to this file.")
    parser.add_argument("--summarise", type=Path, metavar="DIR", help="Print a markdown table of the checks "
                        "written to DIR/*.json by --out, and exit.")
    parser.add_argument("--pipeline", default="fast", choices=["fast", "reference", "seed"])
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--batch-size", type=positive, help="Default: what `bench run` uses on this device.")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16", "int8"], help="Default: as `bench run`.")
    parser.add_argument("--loader-workers", type=positive, default=max(1, usable_cores() - 2))
    parser.add_argument("--loader", choices=["auto", "threads", "processes"], default="auto",
                        help="Loader workers as threads or as processes (as Ray's tasks are); auto: processes "
                        "where they decode JPEG, whose Python parts hold the GIL, else threads.")
    parser.add_argument("--prefetch", type=positive, default=16, help="Row groups read ahead.")
    parser.add_argument("--min-seconds", type=float, default=5.0, help="Time the model alone this long.")
    parser.add_argument("--calls-at-once", type=positive, default=1, help="Threads calling the model at once "
                        "(a threaded model actor's max_concurrency).")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (ceiling and end to end).")
    parser.add_argument("--decode-on-device", action="store_true", help="JPEG data only: decode, resize and crop "
                        "on the model's device (nvJPEG on a GPU) instead of in the loader workers; its cost against "
                        "CPU decoding is reported as decoding_cost.")
    args = parser.parse_args()
    if args.summarise:
        runs = sorted(args.summarise.glob("*.json"), key=lambda path: path.stat().st_mtime)  # in the order run
        results = {path.stem: json.loads(path.read_text()) for path in runs}
        print(summary_table(results))
        return
    kind = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    config = RunConfig(pipeline=args.pipeline, device=kind, batch_size=args.batch_size,
                       precision=args.precision)
    config = resolve(config, kind, "raw")
    if args.compile and config.precision == "int8":
        parser.error("--compile applies to float precisions (int8 runs torch's quantized kernels): add --precision fp32")
    if args.decode_on_device and args.pipeline != "fast":
        parser.error("--decode-on-device needs the fast pipeline (seed decodes on the CPU, as the reference did)")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        if args.data:
            files, fmt = dataset(args.data)
        else:
            where = (args.scratch or Path(scratch)) / f"synth-{args.format}-{args.images}"
            files, fmt = make_dataset(where, args.images, args.format, usable_cores())
        if args.decode_on_device and fmt != "jpeg":
            parser.error(f"--decode-on-device needs JPEG data; {args.data or where} holds {fmt} "
                         "(make it with --format jpeg)")
        processes = args.loader == "processes" or (args.loader == "auto" and fmt == "jpeg" and not args.decode_on_device)
        check = Check(args.loader_workers, args.prefetch, processes, args.min_seconds, args.compile, args.passes,
                      args.calls_at_once, args.decode_on_device)
        result = run(files, fmt, config, check)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
