"""`bench plan`: how many nodes, how long and how much, for a size or a target rate, from the
rates that bundles measured: the model's images/s per GPU (or per core, on CPU-only nodes) and
preprocessing's images/s per core. Node prices and shapes come from results/reference/prices.json.

Everything it prints is a projection: the streaming rate (after the first predictions) times the
GPUs or cores, plus the start-up once. The streaming rate is the one that scales: the reference's
whole-run rate per T4 was 78 img/s at 10G and 166 at 300G, start-up weighing less on the longer
run (docs/clusters.md)."""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.results import bundle, reference

PRICES = Path(__file__).resolve().parents[2] / "results" / "reference" / "prices.json"

_CPU_TIME = re.compile(r"Remote cpu time: .*?([\d.]+)(us|ms|s) total")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def prices() -> dict[str, Any]:
    return json.loads(PRICES.read_text())


@dataclass
class Rates:
    """What the bundles measured, per unit of hardware (medians over the bundles)."""

    model_img_s_per_gpu: float | None = None  # streaming rate / GPUs, from GPU bundles
    pipeline_img_s_per_core: float | None = None  # streaming rate / cores, from CPU bundles: the whole pipeline
    preprocess_img_s_per_core: float | None = None  # images / preprocessing's CPU seconds (Ray's stats)
    startup_s: float | None = None  # seconds to the first predictions: paid once per run
    sources: list[str] = field(default_factory=list)


def preprocess_cpu_seconds(stats: str) -> float | None:
    """Ray Data's total remote CPU time of the operator that preprocesses, where it is an
    operator of its own (fused into the model's, it cannot be told apart)."""
    for block in stats.split("\nOperator ")[1:]:
        name = block.split(":", 1)[0]
        if "preprocess" in name and "Predictor" not in name and (found := _CPU_TIME.search(block)):
            return float(found[1]) * _UNIT[found[2]]
    return None


def rates_from(paths: list[Path]) -> Rates:
    per_gpu, per_core, preprocess, startup, sources = [], [], [], [], []
    for path in paths:
        result = bundle.load(path)
        streaming = result.streaming_img_s
        if streaming is None:
            raise BenchError(f"{path}: the bundle has no first-predictions mark, so no streaming rate to plan from")
        gpus = result.placement.get("actors", 0) * result.placement.get("actor_num_gpus", 0)
        if gpus:
            per_gpu.append(streaming / gpus)
        else:
            cores = sum(n["resources"].get("CPU", 0) for n in bundle.env_of(path).get("nodes", []))
            per_core.append(streaming / cores)
        stats = path / bundle.STATS
        if stats.exists() and (seconds := preprocess_cpu_seconds(stats.read_text())):
            preprocess.append(result.images / seconds)
        startup.append(result.first_predictions_s)
        sources.append(f"{path} ({result.images:,} images, {streaming:,.1f} img/s streaming, "
                       f"{'%g GPU(s)' % gpus if gpus else 'CPU'})")
    median = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    return Rates(median(per_gpu), median(per_core), median(preprocess), median([s for s in startup if s is not None]),
                 sources)


def published_rates(size: str) -> Rates:
    """The reference study's own whole-run rate for ``size``, per T4: quoted, not measured here."""
    run = reference.ray_run_for(size)
    if run is None:
        raise BenchError(f"the reference published no Ray run for {size}; it did for 10G, 300G and 10T")
    return Rates(model_img_s_per_gpu=run["throughput_img_s"] / run["gpus"], startup_s=0.0,
                 sources=[f"the reference's published {size} run: {run['throughput_img_s']:,} img/s on {run['cluster']} "
                          "(whole run, start-up included; quoted)"])


def plan(rates: Rates, images: int, target_img_s: float | None = None, gpu_node: str | None = "g4dn.12xlarge",
         gpu_nodes: int | None = None, cpu_node: str | None = None, cpu_nodes: int | None = None,
         head_node: str | None = "m5.4xlarge") -> dict[str, Any]:
    """Node counts, rate, time and cost for ``images``; the counts are given, or the fewest that
    reach ``target_img_s``."""
    priced = prices()
    table = priced["nodes"]
    for name in (gpu_node, cpu_node, head_node):
        if name and name not in table:
            raise BenchError(f"no price for node type {name!r} in {PRICES}; it has {', '.join(table)}")
    gpu_node = gpu_node if gpu_nodes != 0 else None
    if gpu_node:
        if rates.model_img_s_per_gpu is None:
            raise BenchError("planning GPU nodes needs a bundle run on a GPU (or --published SIZE); the bundles given "
                             "ran on CPUs: plan CPU-only nodes with --gpu-nodes 0 --cpu-node TYPE")
        per_node = rates.model_img_s_per_gpu * table[gpu_node]["gpus"]
    elif not cpu_node or rates.pipeline_img_s_per_core is None:
        raise BenchError("a CPU-only plan needs --cpu-node TYPE and a bundle run on CPUs")
    if gpu_node:
        if gpu_nodes is None:
            if target_img_s is None:
                raise BenchError("give --rate (images/s to reach) or --gpu-nodes")
            gpu_nodes = max(1, math.ceil(target_img_s / per_node))
        model_rate = gpu_nodes * per_node
        if cpu_node:  # preprocessing on the CPU-only nodes, as the kit places it
            if rates.preprocess_img_s_per_core is None:
                raise BenchError("planning CPU-only preprocessing nodes needs a bundle whose preprocessing ran as an "
                                 "operator of its own (Ray's stats give its CPU time); none of the given bundles has one")
            per_cpu_node = rates.preprocess_img_s_per_core * table[cpu_node]["vcpus"]
            cpu_nodes = cpu_nodes if cpu_nodes is not None else math.ceil(model_rate / per_cpu_node)
            preprocess_rate = cpu_nodes * per_cpu_node
        else:
            cpu_nodes = 0
            preprocess_rate = None  # on the GPU nodes' own cores, as in the measured bundles
        rate = model_rate if preprocess_rate is None else min(model_rate, preprocess_rate)
        bound = "model" if preprocess_rate is None or model_rate <= preprocess_rate else "preprocessing"
    else:
        gpu_nodes = 0
        per_cpu_node = rates.pipeline_img_s_per_core * table[cpu_node]["vcpus"]
        if cpu_nodes is None:
            if target_img_s is None:
                raise BenchError("give --rate (images/s to reach) or --cpu-nodes")
            cpu_nodes = max(1, math.ceil(target_img_s / per_cpu_node))
        rate, bound = cpu_nodes * per_cpu_node, "CPU pipeline"
    seconds = (rates.startup_s or 0.0) + images / rate
    usd_per_hour = (gpu_nodes * table[gpu_node]["usd_per_hour"] if gpu_node else 0.0) \
        + (cpu_nodes * table[cpu_node]["usd_per_hour"] if cpu_node else 0.0) \
        + (table[head_node]["usd_per_hour"] if head_node else 0.0)
    return {
        "projected": True,
        "images": images,
        "nodes": {**({gpu_node: gpu_nodes} if gpu_node else {}), **({cpu_node: cpu_nodes} if cpu_node else {}),
                  **({f"{head_node} (head)": 1} if head_node else {})},
        "img_s": rate,
        "bound_by": bound,
        "seconds": seconds,
        "usd": usd_per_hour * seconds / 3600,
        "usd_per_hour": usd_per_hour,
        "img_per_usd": images / (usd_per_hour * seconds / 3600) if usd_per_hour else None,
        "rates": asdict(rates),
        "prices": {"as_of": priced["as_of"], "source": priced["source"]},
    }
