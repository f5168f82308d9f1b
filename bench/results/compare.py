"""`bench compare`: several verified bundles side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.results import bundle
from bench.config import in_todays_terms

ENV_KEYS = ("kit", "python", "cuda", "driver", "packages", "cpu", "gpus", "container")


def top1_agreement(a: Path, b: Path) -> float | None:
    """Share of common ids where both bundles predict the same top-1 class."""
    left = pq.read_table(a / bundle.PREDICTIONS, columns=["id", "top1"])
    right = pq.read_table(b / bundle.PREDICTIONS, columns=["id", "top1"]).rename_columns(["id", "top1_b"])
    joined = left.join(right, keys="id", join_type="inner")
    if joined.num_rows == 0:
        return None
    return float(pc.mean(pc.cast(pc.equal(joined.column("top1"), joined.column("top1_b")), "float64")).as_py())


def env_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [key for key in ENV_KEYS if a.get(key) != b.get(key)]


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Run settings (``result.json`` ``config``) that differ: the first place to look when two
    runs of the same data give other numbers or other answers. Compared in today's terms
    (bench.config.in_todays_terms): a renamed setting is the same setting, and one that a
    bundle lacks ran as its default."""
    left, right = in_todays_terms(a), in_todays_terms(b)
    return sorted(key for key in left.keys() | right.keys() if left.get(key) != right.get(key))


def ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def compare(bundles: list[Path]) -> dict[str, Any]:
    results = [bundle.load(b) for b in bundles]
    envs = [bundle.env_of(b) for b in bundles]
    base, base_env = results[0], envs[0]
    rows = []
    for path, result, env in zip(bundles, results, envs):
        rows.append({
            "bundle": str(path),
            "pipeline": result.pipeline,
            "images": result.images,
            "throughput_img_s": result.throughput_img_s,
            "ratio_to_first": result.throughput_img_s / base.throughput_img_s,
            "streaming_img_s": result.streaming_img_s,
            "streaming_ratio_to_first": ratio(result.streaming_img_s, base.streaming_img_s),
            "startup_s": result.startup_s,
            "same_data": result.dataset_sha256 == base.dataset_sha256,
            "same_weights": result.weights_sha256 == base.weights_sha256,
            "same_predictions": result.predictions_sha256 == base.predictions_sha256,
            "top1_agreement": top1_agreement(bundles[0], path),
            "config_differences": config_differences(base.config, result.config),
            "env_differences": env_differences(base_env, env),
        })
    return {"baseline": str(bundles[0]), "rows": rows}
