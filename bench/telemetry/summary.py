"""Telemetry rows -> telemetry.parquet and the summary in result.json.

Energy comes from NVML's total-energy counter (last minus first reading per GPU), not from
averaged power samples, which miss whatever happens between samples.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.telemetry import Samples

SCHEMA = pa.schema([
    ("ts", pa.float64()), ("node", pa.string()), ("source", pa.string()), ("device", pa.int32()),
    ("uuid", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
])
JOULES_PER_KWH = 3.6e6


def write_parquet(samples: Samples, path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(samples.rows, schema=SCHEMA), path)


def _series(rows: list[dict[str, Any]], source: str) -> dict[tuple, dict[str, list[tuple[float, float]]]]:
    grouped: dict[tuple, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["source"] == source:
            grouped[(row["node"], row["device"], row["uuid"])][row["metric"]].append((row["ts"], row["value"]))
    for metrics in grouped.values():
        for values in metrics.values():
            values.sort()
    return grouped


def _values(points: list[tuple[float, float]]) -> np.ndarray:
    return np.array([v for _, v in points], dtype=np.float64)


def _stats(points: list[tuple[float, float]] | None) -> dict[str, float] | None:
    if not points:
        return None
    values = _values(points)
    return {"mean": float(values.mean()), "p95": float(np.percentile(values, 95)), "max": float(values.max())}


def counter_delta(points: list[tuple[float, float]] | None) -> float | None:
    """Increase of a monotonic counter over the run (None with fewer than two readings)."""
    if not points or len(points) < 2:
        return None
    return float(points[-1][1] - points[0][1])


def summarise(samples: Samples, images: int) -> dict[str, Any]:
    gpus = []
    for (node, device, uuid), metrics in sorted(_series(samples.rows, "gpu").items(), key=lambda kv: (kv[0][0], kv[0][1])):
        energy = counter_delta(metrics.get("energy_j"))
        gpus.append({
            "node": node, "index": device, "uuid": uuid,
            "util_pct": _stats(metrics.get("util_pct")),
            "peak_mem_used_bytes": (_stats(metrics.get("mem_used_bytes")) or {}).get("max"),
            "power_w": _stats(metrics.get("power_w")),
            "energy_j": energy,
        })
    energies = [g["energy_j"] for g in gpus if g["energy_j"] is not None]
    total_energy = float(sum(energies)) if energies and len(energies) == len(gpus) else None
    nodes = []
    for (node, _, _), metrics in sorted(_series(samples.rows, "host").items()):
        nodes.append({"node": node, "cpu_pct": _stats(metrics.get("cpu_pct")),
                      "peak_mem_used_bytes": (_stats(metrics.get("mem_used_bytes")) or {}).get("max")})
    stores = []
    for (node, _, _), metrics in sorted(_series(samples.rows, "object_store").items()):
        stores.append({"node": node, "peak_used_bytes": (_stats(metrics.get("used_bytes")) or {}).get("max"),
                       "spilled_bytes": counter_delta(metrics.get("spilled_bytes")) or 0.0})
    return {
        "samples": len(samples.rows),
        "gpus": gpus,
        "energy_j": total_energy,
        "energy_j_per_image": total_energy / images if total_energy and images else None,
        "images_per_kwh": images / (total_energy / JOULES_PER_KWH) if total_energy else None,
        "nodes": nodes,
        "object_store": stores,
        "object_store_peak_bytes": max((s["peak_used_bytes"] or 0 for s in stores), default=None),
        "spilled_bytes": sum(s["spilled_bytes"] for s in stores) if stores else None,
        "unavailable": samples.unavailable,
        "nvml": sorted(samples.nvml, key=lambda entry: entry["node"]),
    }


def mean_gpu_util(summary: dict[str, Any] | None) -> float | None:
    """The mean of each GPU's mean utilisation in a ``summarise`` result, None without any
    (no GPU, or none that reports utilisation): one figure for a run's table row."""
    util = [gpu["util_pct"]["mean"] for gpu in (summary or {}).get("gpus") or [] if gpu.get("util_pct")]
    return float(np.mean(util)) if util else None

