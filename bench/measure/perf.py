"""`bench perf`: a suite of cases.toml through the harness; for the default suite, ``perf``, the
ratios it exists for, from its cases' records:

1. preprocessing per core: the reference transform against ours, raw and JPEG;
2. end to end: the default pipeline against the reference, the default run before and after the
   reference and taken as their mean (a drifting machine does not flatter or sink the ratio);
3. end to end against the model alone, whose ceiling is measured before the runs and after each
   of them and taken as their mean, every sample kept;
4. the default pipeline's runs on N and on N x scale images, read as a fixed start-up and a
   streaming rate (their wall times differ only by the extra images);
5. `bench micro`'s overhead over its ideal, and the peak private memory of the Ray workers at the
   two sizes (streaming keeps it flat).
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import Any, Callable

from bench.errors import BenchError
from bench.measure import cases, harness
from bench.run import datasets
from data_prep.common.shard_format import DECODED_FORMATS

SUITE = "perf"
PEERS = "peers"
ENGINES = ("spark", "daft", "local")  # the peers suite's cases, each set against Ray's two runs


def run(suite_name: str, out: Path, overrides: harness.Overrides, only: list[str] | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the suite; the ``perf`` suite's report gains its figures (``figures``)."""
    suite = cases.suite(suite_name)
    if only:
        suite = suite.only(only)
    if suite_name == SUITE and (overrides.size or overrides.data):
        given = datasets.resolve(overrides.size, overrides.data, show_progress=False)
        if given.manifest["format"] not in DECODED_FORMATS:
            raise BenchError(f"{given.uri} holds JPEGs; bench perf needs a raw or pixels dataset (it makes the JPEG "
                             "sample itself)")
    report = harness.run_suite(suite, out, overrides, log)
    if suite_name in (SUITE, PEERS) and not only:
        report["figures"] = figures(report) if suite_name == SUITE else peer_figures(report)
        harness.write(out, report)
    return report


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


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """The perf suite's ratios, from its records (named as in cases.toml); a failed case leaves
    the figures that need it out, with the reason."""
    by_name = {case["name"]: case for case in report["cases"]}
    failed = {name: case.get("error") for name, case in by_name.items() if case["status"] != "ok"}
    if failed:
        return {"missing": failed}
    preprocess, ceiling = by_name["preprocess"], by_name["ceiling"]
    first, reference, default, large = (by_name[n] for n in ("default-first", "reference", "default", "default-large"))
    micro = by_name["micro"]
    defaults = [first, default]
    default_img_s = fmean(r["img_s"] for r in defaults)
    model_only = fmean(ceiling["samples"])
    return {
        "images": default["images"],
        "dataset_sha256": default["dataset_sha256"],
        "default_config": {key: default[key] for key in ("batch_size", "precision", "calls_in_parallel")},
        "preprocess": {fmt: preprocess[fmt] for fmt in ("raw", "jpeg")},
        "preprocess_speedup_raw": preprocess["raw"]["speedup"],
        "preprocess_speedup_jpeg": preprocess["jpeg"]["speedup"],
        "model_only_img_s": model_only,
        "model_only_img_s_samples": ceiling["samples"],
        "e2e": {"reference_img_s": reference["img_s"], "default_img_s": default_img_s,
                "default_img_s_before_after_reference": [r["img_s"] for r in defaults],
                "default_large_img_s": large["img_s"], "large_images": large["images"]},
        "e2e_over_reference": default_img_s / reference["img_s"],
        "e2e_over_ceiling": large["img_s"] / model_only,
        "e2e_over_ceiling_small": default_img_s / model_only,
        # The start-up goals' figures: the model's first batch, and the first predictions, after the timer.
        "startup": {"first_batch_s": [r.get("first_batch_s") for r in defaults],
                    "first_predictions_s": [r.get("first_predictions_s") for r in defaults]},
        "streaming": startup_and_rate(default["images"], fmean(r["wall_s"] for r in defaults),
                                      large["images"], large["wall_s"], model_only),
        "same_predictions_reference_default": reference["predictions_sha256"] == default["predictions_sha256"],
        "same_predictions_default_runs": first["predictions_sha256"] == default["predictions_sha256"],
        "precision_cost": default["precision_cost"],
        "micro": micro,
        "micro_overhead_s": micro["overhead_s"],
        "memory": {"images": [default["images"], large["images"]],
                   "peak_worker_private_mb": [default["peak_worker_private_mb"], large["peak_worker_private_mb"]],
                   "growth": large["peak_worker_private_mb"] / max(default["peak_worker_private_mb"], 1e-9),
                   "by_worker_mb": [default["worker_private_mb"], large["worker_private_mb"]]},
    }


def peer_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The peers suite's rows: each engine's throughput, start-up, streaming rate and peak memory,
    as ratios against Ray (the mean of its runs before and after the peers) and against the one
    plain process (the ``local`` case)."""
    by_name = {case["name"]: case for case in report["cases"]}
    failed = {name: case.get("error") for name, case in by_name.items() if case["status"] != "ok"}
    if failed:
        return {"missing": failed}
    rays = [by_name["ray-first"], by_name["ray"]]
    ray_img_s, local_img_s = fmean(r["img_s"] for r in rays), by_name["local"]["img_s"]
    ceiling = fmean(by_name["ceiling"]["samples"])

    def row(engine: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
        img_s = fmean(r["img_s"] for r in runs)
        streaming = [r["streaming_img_s"] for r in runs if r["streaming_img_s"] is not None]
        return {"engine": engine, "version": runs[0].get("engine_version"), "img_s": img_s,
                "img_s_runs": [r["img_s"] for r in runs], "startup_s": fmean(r["first_predictions_s"] for r in runs),
                "streaming_img_s": fmean(streaming) if streaming else None,
                "peak_private_mb": max(r["peak_tree_private_mb"] for r in runs),
                "over_ray": img_s / ray_img_s, "over_local": img_s / local_img_s, "over_ceiling": img_s / ceiling}

    sums = {name: by_name[name]["predictions_sha256"] for name in ("ray-first", *ENGINES, "ray")}
    return {"images": rays[0]["images"], "dataset_sha256": rays[0]["dataset_sha256"],
            "precision": rays[0]["precision"], "batch_size": rays[0]["batch_size"], "model_only_img_s": ceiling,
            "engines": [row("ray", rays), *(row(name, [by_name[name]]) for name in ENGINES)],
            "same_predictions": len(set(sums.values())) == 1, "predictions_sha256": sums}
