"""`bench perf`: the default pipeline against the reference one and against the model alone,
measured side by side in one run on the same data, reported as ratios.

1. preprocessing per core (one thread): the reference transform vs ours, raw and JPEG;
2. the model-only ceiling: forward passes on ready tensors at the default pipeline's batch
   size, precision, memory format and device, as many calls at once as its model actors run;
3. end to end: ``--pipeline seed`` vs the default, same dataset (full bundles, kept);
4. `bench micro`'s overhead over its ideal;
5. peak private memory per Ray worker at two dataset sizes (streaming keeps it flat).

The e2e/ceiling ratio is taken on the larger dataset, where the fixed start-up cost (Ray
workers, importing torch, the first read) is amortised as in a real run; the smaller one's
ratio is reported beside it. The ceiling is measured before the pipeline runs and after each
of them, and the ratio taken against their mean, so that a machine whose speed drifts (a shared
VM: 49.6 to 72.1 img/s within 85 s, docs/performance.md) does not flatter or sink the ratio
unseen; every measurement is reported. For the same reason the default pipeline runs before
and after seed, against their mean. The default runs on N and on N x memory_scale
images also split the pipeline's time into a fixed start-up and a per-image cost (their wall
times differ only by the extra images), whose rate is what the pipeline does once streaming.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from collections.abc import Callable
from statistics import fmean
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.results import bundle, envinfo
from bench.run import cluster, datasets, runner
from bench.run.connect import connect
from bench.measure import micro
from bench.stages import precision, quantize
from bench.config import RunConfig, resolve
from bench.errors import BenchError
from bench.measure.memory import WorkerMemorySampler
from bench.variants import variant
from bench.measure.timing import images_per_second, model_ceiling
from data_prep.common.cores import usable_cores
from data_prep.common.images import encode_jpeg
from data_prep.common.shard_format import DECODED_FORMATS

PERF = "perf.json"
PREPROCESS_SAMPLE = 32


def preprocess_per_core(sample: dict[str, np.ndarray], min_seconds: float) -> dict[str, Any]:
    """Images/s of each variant's ``preprocess`` on one thread, on the raw sample and on the
    same images as stored JPEGs (what `data-prep --format jpeg` writes)."""
    jpeg = dict(sample, image=np.array([encode_jpeg(image) for image in sample["image"]], dtype=object))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        figures: dict[str, Any] = {}
        for fmt, batch in (("raw", sample), ("jpeg", jpeg)):
            rates = {name: images_per_second(lambda f=variant(name).preprocess(): f(batch), len(batch["id"]), min_seconds)
                     for name in ("reference", "fast")}
            figures[fmt] = {"reference_img_s": rates["reference"], "ours_img_s": rates["fast"],
                            "speedup": rates["fast"] / rates["reference"]}
        return figures
    finally:
        torch.set_num_threads(threads)


def ceiling(config: RunConfig, dataset: datasets.Dataset, sample: dict[str, np.ndarray],
            min_seconds: float) -> Callable[[], float]:
    """A measurement of the model alone, configured as the default pipeline's actors are (int8
    calibrated on the same images as in `bench run`; as many calls at once as an actor runs), in
    this process, on ``sample``'s crops; built once, taken as often as asked."""
    chosen = variant(config.pipeline)
    int8_state = None
    if config.precision == "int8":
        calibration = quantize.calibration_batch(dataset.shard_files, dataset.filesystem)
        int8_state = quantize.int8_state_for(chosen, config.weights, config.weights_seed, calibration)
    predictor = chosen.predictor()(config.weights, config.weights_seed, config.device, config.precision, False,
                                   int8_state=int8_state, **chosen.predictor_options(config))
    crops = chosen.preprocess()(sample)["image"]
    repeats = -(-config.batch_size // len(crops))
    batch = np.concatenate([crops] * repeats)[: config.batch_size]
    return lambda: model_ceiling(predictor, batch, min_seconds, streams=config.calls_in_parallel)


def startup_and_rate(small_images: int, small_wall_s: float, large_images: int, large_wall_s: float,
                     ceiling_img_s: float) -> dict[str, float | None]:
    """Runs of one pipeline on N and M images read as wall = start-up + images / rate: the rate
    is what the extra M - N images cost, the start-up what is left of the smaller run (None
    when noise made the larger run no slower: nothing can be read then)."""
    extra_s = large_wall_s - small_wall_s
    if extra_s <= 0:
        return {"img_s": None, "startup_s": None, "over_ceiling": None}
    rate = (large_images - small_images) / extra_s
    return {"img_s": rate, "startup_s": small_wall_s - small_images / rate, "over_ceiling": rate / ceiling_img_s}


def device_description(kind: str) -> str:
    if kind == "cuda":
        return f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"cpu: {envinfo.cpu_model() or platform.machine()} ({usable_cores()} cores)"



def _run(dataset: datasets.Dataset, config: RunConfig, out: Path) -> tuple[dict[str, Any], WorkerMemorySampler]:
    with WorkerMemorySampler() as memory:
        path = runner.run(None, dataset.uri, config, None, out, show_progress=False)
    return json.loads((path / bundle.RESULT).read_text()), memory


def run(size: str | None, data: str | None, out: Path, memory_scale: int = 4,
        min_seconds: float = 5.0, log=print) -> dict[str, Any]:
    dataset = datasets.resolve(size, data)
    connect(None)
    placement = cluster.place(RunConfig(), cluster.alive_nodes())
    kind = "cuda" if placement.actor_num_gpus else "cpu"
    default = resolve(RunConfig(device=kind), kind, dataset.manifest["format"])
    if dataset.manifest["format"] not in DECODED_FORMATS:
        raise BenchError(f"{dataset.uri} holds JPEGs; bench perf needs a raw or pixels dataset (it makes the JPEG sample itself)")
    sample = precision.sample_batch(dataset.shard_files, dataset.filesystem, PREPROCESS_SAMPLE)

    log("1/5 preprocessing per core")
    preprocess = preprocess_per_core(sample, min_seconds / 2)
    log("2/5 model-only ceiling (again after each pipeline run)")
    measure_ceiling = ceiling(default, dataset, sample, min_seconds)
    ceilings = [measure_ceiling()]

    def pipeline_run(data: datasets.Dataset, config: RunConfig, name: str) -> tuple[dict[str, Any], WorkerMemorySampler]:
        outcome = _run(data, config, out / "runs" / name)
        ceilings.append(measure_ceiling())
        return outcome

    log(f"3/5 end to end, {dataset.images:,} images: default, seed, default again")
    first_result, _ = pipeline_run(dataset, RunConfig(), "default-first")
    seed_result, _ = pipeline_run(dataset, RunConfig(pipeline="reference"), "seed")
    fast_result, small_memory = pipeline_run(dataset, RunConfig(), "default")
    defaults = [first_result, fast_result]
    default_img_s = fmean([r["throughput_img_s"] for r in defaults])
    log("4/5 bench micro")
    micro_figures = micro.run(dataset.shard_files, dataset.filesystem)
    large = datasets.synthetic(dataset.images * memory_scale)
    log(f"5/5 memory: default pipeline again on {large.images:,} images")
    large_result, large_memory = pipeline_run(large, RunConfig(), f"default-x{memory_scale}")
    model_only = fmean(ceilings)

    figures = {
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "kit_version": envinfo.__version__,
        "device": device_description(kind),
        "dataset_sha256": dataset.sha256,
        "images": dataset.images,
        "default_config": {"batch_size": default.batch_size, "precision": default.precision,
                           "memory_format": "channels_last", "device": kind,
                           "calls_in_parallel": default.calls_in_parallel},
        "preprocess": preprocess,
        "preprocess_speedup_raw": preprocess["raw"]["speedup"],
        "preprocess_speedup_jpeg": preprocess["jpeg"]["speedup"],
        "model_only_img_s": model_only,
        "model_only_img_s_samples": ceilings,
        "e2e": {"seed_img_s": seed_result["throughput_img_s"], "default_img_s": default_img_s,
                "default_img_s_before_after_seed": [r["throughput_img_s"] for r in defaults],
                "default_large_img_s": large_result["throughput_img_s"], "large_images": large.images},
        "e2e_over_seed": default_img_s / seed_result["throughput_img_s"],
        "e2e_over_ceiling": large_result["throughput_img_s"] / model_only,
        "e2e_over_ceiling_small": default_img_s / model_only,
        "streaming": startup_and_rate(dataset.images, fmean([r["timings"]["wall_s"] for r in defaults]),
                                      large.images, large_result["timings"]["wall_s"], model_only),
        "same_predictions_seed_default": seed_result["predictions_sha256"] == fast_result["predictions_sha256"],
        "same_predictions_default_runs": first_result["predictions_sha256"] == fast_result["predictions_sha256"],
        "precision_cost": fast_result.get("precision_cost"),
        "micro": micro_figures,
        "micro_overhead_s": micro_figures["overhead_s"],
        "memory": {"images": [dataset.images, large.images],
                   "peak_worker_private_mb": [small_memory.peak_mb(), large_memory.peak_mb()],
                   "growth": large_memory.peak_mb() / max(small_memory.peak_mb(), 1e-9),
                   "by_worker_mb": [small_memory.by_worker(), large_memory.by_worker()]},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    write(out, figures)
    return figures


def write(out: Path, figures: dict[str, Any]) -> None:
    """perf.json plus a SHA256SUMS over it and each run bundle's own SHA256SUMS, so
    ``sha256sum -c SHA256SUMS`` there checks the whole tree (each run also `bench verify`s)."""
    (out / PERF).write_text(bundle.dumps(figures))
    bundle.write_sums(out, [PERF] + sorted(str(p.relative_to(out)) for p in out.glob("runs/*/" + bundle.SUMS)))
